"""Typed recipe configs: the type, range or choices and meaning of every key, checked before any work.

A recipe declares a pydantic model of its config (``Recipe(schema=...)``); the
launcher validates the resolved config against it before a run folder or a
model exists, and ``tools/run.py RECIPE --show-config`` prints every key with
its default and description.

Why pydantic rather than dataclasses: nested sections, ``Literal`` choices and
numeric bounds are validated with the failing key's location, cross-key rules
are model validators, and each ``Field``'s description is the key's
documentation; with dataclasses each of these would be hand-written again.
The YAML file beside the recipe stays the one place for default values: the
schema declares what a key may hold and what it means, never its default.
Strict types: a bool is not an int and a number is not a string; an int is
accepted where a float is expected.
"""

from __future__ import annotations

import re
from typing import Annotated, Literal

from ..engine.hypergradient import MODES
from ..optional import import_extra
from .config import ConfigError

pydantic = import_extra("pydantic")

Field = pydantic.Field
model_validator = pydantic.model_validator


class Section(pydantic.BaseModel):
    """A config section: unknown keys are refused, types are strict."""

    model_config = pydantic.ConfigDict(extra="forbid", strict=True)


PositiveInt = Annotated[int, Field(gt=0)]
NonNegativeInt = Annotated[int, Field(ge=0)]
PositiveFloat = Annotated[float, Field(gt=0)]
NonNegativeFloat = Annotated[float, Field(ge=0)]
Probability = Annotated[float, Field(ge=0, le=1)]
Seed = Annotated[int, Field(ge=0, lt=2**32)]
Seeds = Annotated[list[Seed], Field(min_length=1)]
Rate = Annotated[float, Field(ge=0, lt=1)]  # a probability that must leave something: dropout, noise
# accelerate's tracker names (accelerate.tracking): where Run.log also sends metrics
Tracker = Literal["tensorboard", "wandb", "comet_ml", "aim", "mlflow", "clearml", "dvclive", "swanlab",
                  "trackio"]


def names_from(choices) -> object:
    """The type of a non-empty list of names drawn from ``choices`` (e.g. a recipe's methods)."""
    return Annotated[list[Literal[tuple(choices)]], Field(min_length=1)]


class SGDSection(Section):
    """An SGD optimiser's keys (the look-ahead of every meta-gradient imitates it)."""

    lr: PositiveFloat = Field(description="learning rate")
    momentum: Rate = Field(description="SGD momentum")
    weight_decay: NonNegativeFloat = Field(description="L2 weight decay")
    batch_size: PositiveInt = Field(description="training batch size (per process)")


class AMALSchedule(Section):
    """The keys of core's ``AMAL`` that every recipe using it sets (each adds its ``lr``)."""

    every: PositiveInt = Field(description="L: a meta phase after every L epochs (or steps)")
    inner_steps: PositiveInt = Field(description="passes over the training set in one meta phase")
    mode: Literal[MODES] = Field(description="look-ahead: last_layer (AMAL's default; exact for a linear "
                                             "model), exact, first_order or finite_difference")


class AMALSettings(AMALSchedule):
    """``AMALSchedule`` with the initial weights of a primary loss and its guide (the KD recipes)."""

    init: Annotated[list[NonNegativeFloat], Field(min_length=2, max_length=2)] = Field(
        description="initial (lambda_p, lambda_a)")


class L2TDLNSettings(Section):
    """The keys of core's ``L2TDLN`` and ``TeachingSchedule`` that every recipe using them sets."""

    unroll_steps: PositiveInt = Field(description="K: student SGD steps the teacher looks through (15)")
    teach_every: PositiveInt = Field(description="teach on every n-th window of K batches; the others "
                                                 "train the student on the current DLN (1: every window)")
    dln_lr: PositiveFloat = Field(description="the DLN's step: scale of the LSTM's output (dln, l2t_dln: "
                                              "Adam's learning rate for dln)")
    teacher_lr: PositiveFloat = Field(description="the LSTM teacher's Adam learning rate")
    val_batch: PositiveInt = Field(description="the teacher's validation examples per teaching round")
    init: Literal["pairwise_ce", "kaiming"] = Field(description="the DLN's start: fitted to the pair's "
                                                                "binary CE, or the authors' random init")


class RecipeConfig(Section):
    """Keys every recipe has."""

    trackers: list[Tracker] = Field(
        description="also send every logged metric to these accelerate trackers (e.g. [tensorboard]); "
                    "[]: only metrics.jsonl")


def validate_config(schema: type[Section], config: dict) -> None:
    """Raise ``ConfigError`` with one line per problem if ``config`` does not fit ``schema``."""
    try:
        schema.model_validate(config)
    except pydantic.ValidationError as err:
        raise ConfigError("; ".join(_describe(e) for e in err.errors())) from None


_BOUNDS = ("greater_than", "greater_than_equal", "less_than", "less_than_equal")


def _describe(error: dict) -> str:
    key = "".join(f"[{part}]" if isinstance(part, int) else f".{part}" for part in error["loc"]).lstrip(".")
    message = error["msg"].removeprefix("Value error, ")
    if error["type"] in ("missing", "extra_forbidden"):
        return f"{key}: {message.lower()}"
    if error["type"].startswith("value_error") or error["type"] == "assertion_error":
        # a cross-key rule names its keys itself
        named = not key or message.split(" ")[0].rstrip(":").startswith(key)
        return message if named else f"{key}: {message}"
    if error["type"] in _BOUNDS:
        message = message.replace("Input should be ", "Input should be a number ")
    # pydantic's "Input / List / String should ..." read as what the key expects
    expected = re.sub(r"^(Input|List|String) should (be|have) ", "expected ", message)
    expected = expected.replace(" after validation", "")
    return f"{key}: {expected}, got {error['input']!r}"


def describe_keys(schema: type[Section], defaults: dict) -> list[tuple[str, object, str]]:
    """``(dotted key, default, description)`` for every leaf key of ``schema``, in the YAML's order."""
    rows = []
    for name, value in defaults.items():
        field = schema.model_fields.get(name)
        if field is None:
            continue
        section = _section_type(field.annotation)
        if section is not None and isinstance(value, dict):
            rows += [(f"{name}.{key}", default, text) for key, default, text in describe_keys(section, value)]
        else:
            rows.append((name, value, field.description or ""))
    return rows


def _section_type(annotation) -> type[Section] | None:
    return annotation if isinstance(annotation, type) and issubclass(annotation, Section) else None

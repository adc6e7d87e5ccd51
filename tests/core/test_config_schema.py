"""Config schemas: a bad value is refused by the launcher before any work, in one line naming the key."""

import json
import logging
import subprocess
import sys
from typing import Annotated, Literal

import pytest

from metaloss.core.harness import ConfigError, Recipe
from metaloss.core.harness import launch as launch_module
from metaloss.core.harness.config import config_hash, resolve_config
from metaloss.core.harness.launch import main as launch
from metaloss.core.harness.schema import (
    Field,
    PositiveFloat,
    PositiveInt,
    RecipeConfig,
    Section,
    describe_keys,
    model_validator,
    names_from,
    validate_config,
)


class Optim(Section):
    lr: PositiveFloat = Field(description="the learning rate")
    schedule: Literal["cosine", "multistep"] = Field(description="how the lr decays")


class ToyConfig(RecipeConfig):
    output_dir: str = Field(description="where runs go")
    methods: names_from(("a", "b")) = Field(description="what to train")
    epochs: PositiveInt = Field(description="training epochs")
    optim: Optim

    @model_validator(mode="after")
    def _b_needs_cosine(self):
        if "b" in self.methods and self.optim.schedule != "cosine":
            raise ValueError("methods: b needs optim.schedule=cosine")
        return self


DEFAULTS = {"output_dir": "runs", "methods": ["a"], "epochs": 3, "optim": {"lr": 0.5, "schedule": "cosine"},
            "trackers": []}


@pytest.mark.parametrize("change, message", [
    ({"optim": {"lr": 0, "schedule": "cosine"}}, "optim.lr: expected a number greater than 0, got 0"),
    ({"epochs": -3}, "epochs: expected a number greater than 0, got -3"),
    ({"epochs": True}, "epochs: expected a valid integer, got True"),  # a bool is not an int
    ({"epochs": "3"}, "epochs: expected a valid integer, got '3'"),  # no string coercion
    ({"methods": ["a", "c"]}, "methods[1]: expected 'a' or 'b', got 'c'"),
    ({"methods": []}, "methods: expected at least 1 item, not 0, got []"),
    ({"trackers": ["tensorbored"]}, "trackers[0]: expected 'tensorboard'"),
    ({"methods": ["b"], "optim": {"lr": 0.5, "schedule": "multistep"}},
     "methods: b needs optim.schedule=cosine"),
    ({"surprise": 1}, "surprise: extra inputs are not permitted"),
])
def test_a_bad_value_is_one_line_naming_key_expected_and_given(change, message):
    with pytest.raises(ConfigError) as err:
        validate_config(ToyConfig, {**DEFAULTS, **change})
    assert str(err.value).startswith(message) and "\n" not in str(err.value)


class Named(Section):
    name: Annotated[str, Field(min_length=1)] = Field(description="a name")


def test_every_problem_is_on_the_same_line_and_reads_expected_got():
    with pytest.raises(ConfigError) as err:
        validate_config(Named, {"name": "", "other": 1})
    assert str(err.value) == ("name: expected at least 1 character, got ''; "
                              "other: extra inputs are not permitted")


def test_an_int_is_a_float_and_the_defaults_validate():
    validate_config(ToyConfig, {**DEFAULTS, "optim": {"lr": 1, "schedule": "cosine"}})


def test_describe_keys_gives_every_leaf_with_its_default_and_meaning():
    rows = describe_keys(ToyConfig, DEFAULTS)
    assert [key for key, _, _ in rows] == ["output_dir", "methods", "epochs", "optim.lr", "optim.schedule",
                                           "trackers"]
    assert ("optim.lr", 0.5, "the learning rate") in rows


@pytest.fixture
def toy(tmp_path, monkeypatch):
    (tmp_path / "toy.yaml").write_text(json.dumps({**DEFAULTS, "output_dir": str(tmp_path / "runs")}))
    calls = []
    recipe = Recipe("toy", "a toy", tmp_path / "toy.yaml", calls.append, schema=ToyConfig)
    monkeypatch.setattr(launch_module, "discover_recipes", lambda only=None: {"toy": recipe})
    return calls


def test_the_launcher_refuses_before_the_recipe_or_its_folder(toy, tmp_path, capsys):
    assert launch(["toy", "optim.lr=0", "--run-dir", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["run.py: config error: optim.lr: expected a number greater than 0, got 0.0"]
    assert toy == [] and not (tmp_path / "run").exists()


def test_show_config_prints_keys_values_and_meanings_and_runs_nothing(toy, tmp_path, capsys):
    assert launch(["toy", "epochs=7", "--show-config"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert any(line.startswith("epochs = 7") and line.endswith("# training epochs") for line in out)
    assert any(line.startswith('optim.schedule = "cosine"') for line in out)
    assert toy == [] and not (tmp_path / "runs").exists()


def test_a_main_given_as_a_reference_is_imported_only_when_the_recipe_runs(tmp_path):
    recipe = Recipe("lazy", "lazy", tmp_path / "x.yaml", "json:no_such_function")
    with pytest.raises(AttributeError, match="no_such_function"):
        recipe.run(None)
    with pytest.raises(TypeError, match="module:function"):
        Recipe("lazy", "lazy", tmp_path / "x.yaml", "not a reference")


def test_a_bad_kd_digits_value_fails_without_importing_the_vision_package(tmp_path):
    """The config is checked before metaloss.vision (timm, torchvision) is imported."""
    code = (
        "import sys\n"
        "from metaloss.core.harness.launch import main\n"
        f"code = main(['kd_digits', 'optim.lr=0', '--run-dir', {str(tmp_path / 'run')!r}])\n"
        "print(code, 'metaloss.vision' in sys.modules, 'timm' in sys.modules)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.stdout.split() == ["2", "False", "False"], done
    assert done.stderr.strip() == "run.py: config error: optim.lr: expected a number greater than 0, got 0.0"
    assert not (tmp_path / "run").exists()


def test_a_valid_config_runs_as_resolved_in_the_folder_its_hash_names(toy, tmp_path, caplog, capsys):
    """The schema only checks: the recipe gets resolve_config's dict, so run folder names do not change."""
    defaults = {**DEFAULTS, "output_dir": str(tmp_path / "runs")}
    with caplog.at_level(logging.INFO, logger="metaloss.core.harness.launch"):
        assert launch(["toy", "optim.lr=1"]) == 0
    (run,) = toy
    resolved = resolve_config(defaults, ["optim.lr=1"])
    assert run.config == resolved and type(run.config["optim"]["lr"]) is float
    assert run.dir == tmp_path / "runs" / f"toy-{config_hash(resolved)}"
    # where the run goes is a status message (logging), not part of the results on stdout
    assert [r.getMessage() for r in caplog.records] == [f"run dir: {run.dir} (1 process)"]
    assert "run dir" not in capsys.readouterr().out

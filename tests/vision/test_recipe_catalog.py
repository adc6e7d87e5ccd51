"""The vision catalog: every shipped config validates, and its names are the ones the code implements."""

from pathlib import Path

import pytest

from metaloss.core.harness.config import apply_config_file
from metaloss.core.harness.launch import discover_recipes
from metaloss.core.harness.schema import validate_config

VISION = ("kd_digits", "kd", "train_teacher", "coreset", "wdue")
CONFIGS = Path(__file__).resolve().parents[2] / "packages/vision/src/metaloss/vision/recipes/configs"


@pytest.mark.parametrize("name", [n for n in VISION if n != "coreset"])  # coreset needs a source run
def test_every_default_config_fits_its_schema(name):
    recipe = discover_recipes(only=name)[name]
    validate_config(recipe.schema, recipe.load_defaults())


@pytest.mark.parametrize("path", sorted(CONFIGS.glob("*.yaml")), ids=lambda p: p.name)
def test_every_shipped_override_file_fits_its_recipes_schema(path):
    name = path.stem.split("_")[0]  # kd_cifar10_cpu.yaml -> kd, wdue_cifar10_cpu.yaml -> wdue
    recipe = discover_recipes(only=name)[name]
    validate_config(recipe.schema, apply_config_file(recipe.load_defaults(), path))


def test_the_catalogs_names_are_what_the_code_implements():
    from metaloss.vision.data.splits import DATASETS as SOURCES
    from metaloss.vision.noise import NOISE_GENERATORS
    from metaloss.vision.recipes.coreset import STRATEGIES
    from metaloss.vision_catalog import CORESET_STRATEGIES, DATASETS, NOISE_KINDS

    assert set(SOURCES) == set(DATASETS)
    assert set(NOISE_GENERATORS) == set(NOISE_KINDS)
    assert set(STRATEGIES) == set(CORESET_STRATEGIES)


def test_coreset_refuses_a_source_that_is_not_a_run(refused, tmp_path):
    line = refused("coreset", f"source_run={tmp_path / 'nowhere'}")
    assert "source_run:" in line and "is not a run folder" in line

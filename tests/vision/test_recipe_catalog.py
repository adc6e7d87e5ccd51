"""The vision catalog: every shipped config validates, and its names are the ones the code implements."""

from pathlib import Path

import pytest

from metaloss.core.harness.config import apply_config_file
from metaloss.core.harness.launch import discover_recipes
from metaloss.core.harness.schema import validate_config

VISION = ("kd_digits", "kd", "train_teacher", "coreset", "wdue", "noisy_labels")
CONFIGS = Path(__file__).resolve().parents[2] / "packages/vision/src/metaloss/vision/recipes/configs"


@pytest.mark.parametrize("name", [n for n in VISION if n != "coreset"])  # coreset needs a source run
def test_every_default_config_fits_its_schema(name):
    recipe = discover_recipes(only=name)[name]
    validate_config(recipe.schema, recipe.load_defaults())


@pytest.mark.parametrize("path", sorted(CONFIGS.glob("*.yaml")), ids=lambda p: p.name)
def test_every_shipped_override_file_fits_its_recipes_schema(path):
    # kd_cifar10_cpu.yaml -> kd, noisy_labels_cifar10_cpu.yaml -> noisy_labels: the longest recipe prefix
    name = max((n for n in VISION if path.stem.startswith(n + "_")), key=len)
    recipe = discover_recipes(only=name)[name]
    validate_config(recipe.schema, apply_config_file(recipe.load_defaults(), path))


def test_the_catalogs_names_are_what_the_code_implements():
    from metaloss.vision.data.splits import DATASETS as SOURCES
    from metaloss.vision.noise import NOISE_KINDS as GENERATED
    from metaloss.vision.recipes.coreset import STRATEGIES
    from metaloss.vision_catalog import CORESET_STRATEGIES, DATASETS, NOISE_KINDS

    assert set(SOURCES) == set(DATASETS)
    assert set(GENERATED) == set(NOISE_KINDS)
    assert set(STRATEGIES) == set(CORESET_STRATEGIES)


def test_coreset_refuses_a_source_that_is_not_a_run(refused, tmp_path):
    line = refused("coreset", f"source_run={tmp_path / 'nowhere'}")
    assert "source_run:" in line and "is not a run folder" in line

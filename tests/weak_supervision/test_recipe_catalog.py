"""The weak-supervision catalog: the shipped config validates; its names are what the code implements."""

from metaloss.core.harness.launch import discover_recipes
from metaloss.core.harness.schema import validate_config


def test_the_default_config_fits_its_schema():
    recipe = discover_recipes(only="rule_denoising")["rule_denoising"]
    validate_config(recipe.schema, recipe.load_defaults())


def test_the_catalogs_names_are_what_the_code_implements():
    from metaloss.weak_supervision.data import DATASETS, load_rule_dataset
    from metaloss.weak_supervision.features import KINDS
    from metaloss.weak_supervision_catalog import FEATURE_KINDS

    assert KINDS == FEATURE_KINDS
    for name in DATASETS:  # every name the schema offers loads from the committed copies
        assert load_rule_dataset(name, 0).name == name

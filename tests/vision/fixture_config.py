"""The one way vision tests build a recipe's config on the committed image fixtures."""

from metaloss.core.harness.config import resolve_config
from metaloss.core.harness.launch import discover_recipes
from metaloss.vision.data import fixture_root


def fixture_config(recipe: str, tmp_path, *overrides: str) -> dict:
    """``recipe``'s defaults with ``overrides``, reading the fixtures and writing under ``tmp_path``."""
    defaults = discover_recipes()[recipe].load_defaults()
    paths = [f"data.root={fixture_root()}", f"output_dir={tmp_path}"]
    return resolve_config(defaults, [*paths, *overrides])

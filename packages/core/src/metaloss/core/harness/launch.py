"""The run launcher: find recipes, resolve their config, run them in a run folder.

``tools/run.py`` is this module's ``main``::

    python tools/run.py --list
    accelerate launch tools/run.py RECIPE [--config FILE] [key=value ...] [--run-dir PATH]

Installed packages register ``Recipe`` objects under the entry-point group
``metaloss.recipes``. A recipe's YAML default config is overridden by
``key=value`` items (dotted keys for nested sections, values parsed as YAML);
an unknown key or a value of the wrong type is a ``ConfigError`` before any
work starts. The run folder is named after a hash of the resolved config, so
the same command started again resumes the same run.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from dataclasses import dataclass
from importlib.metadata import entry_points
from pathlib import Path

from ..optional import import_extra
from .config import ConfigError, apply_config_file, check_run_dir, resolve_config, run_dir_for
from .files import atomic_write
from .run import Run

ENTRY_POINT_GROUP = "metaloss.recipes"


@dataclass(frozen=True)
class Recipe:
    """A runnable experiment: ``main(run)`` does the work, reading ``run.config``."""

    name: str
    description: str
    default_config: Path  # a YAML file shipped inside the package
    main: Callable[[Run], None]

    def __post_init__(self):
        if not isinstance(self.name, str) or not self.name:
            raise ValueError(f"Recipe.name must be a non-empty str, got {self.name!r}")
        if not isinstance(self.default_config, (str, Path)):
            raise TypeError(
                f"Recipe.default_config must be a path, got {type(self.default_config).__name__}"
            )
        if not callable(self.main):
            raise TypeError(f"Recipe.main must be callable, got {type(self.main).__name__}")
        object.__setattr__(self, "default_config", Path(self.default_config))

    def load_defaults(self) -> dict:
        """The recipe's default config, read from its YAML file."""
        config = import_extra("yaml").safe_load(self.default_config.read_text())
        if not isinstance(config, dict):
            raise ConfigError(
                f"{self.default_config} must hold a YAML mapping, got {type(config).__name__}"
            )
        return config


def discover_recipes() -> dict[str, Recipe]:
    """Every recipe installed packages register under ``metaloss.recipes``, by name."""
    recipes: dict[str, Recipe] = {}
    sources: dict[str, str] = {}
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        # The same distribution found twice on sys.path lists its entry point twice.
        if sources.get(ep.name) == ep.value:
            continue
        if ep.name in sources:
            raise ValueError(
                f"two packages register the recipe {ep.name!r}: {sources[ep.name]} and {ep.value}"
            )
        recipe = ep.load()
        if not isinstance(recipe, Recipe):
            raise TypeError(
                f"entry point {ep.name!r} = {ep.value!r} in group {ENTRY_POINT_GROUP!r} must be "
                f"a metaloss.core.harness.Recipe, got {type(recipe).__name__}"
            )
        if recipe.name != ep.name:
            raise ValueError(
                f"entry point {ep.name!r} = {ep.value!r} loads a recipe named {recipe.name!r}"
            )
        recipes[ep.name], sources[ep.name] = recipe, ep.value
    return dict(sorted(recipes.items()))


def _write_config(run: Run) -> None:
    text = import_extra("yaml").safe_dump(run.config, sort_keys=False)
    atomic_write(run.dir / "config.yaml", lambda tmp: tmp.write_text(text))


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="run.py",
        description="Run a metaloss recipe: run.py RECIPE [key=value ...] [--run-dir PATH]",
    )
    parser.add_argument("recipe", nargs="?", help="a recipe name (see --list)")
    parser.add_argument("overrides", nargs="*", metavar="key=value",
                        help="config overrides, dotted keys for sections (optim.lr=0.1)")
    parser.add_argument("--list", action="store_true", help="list the installed recipes")
    parser.add_argument("--config", type=Path, default=None,
                        help="a YAML file of overrides, applied before the key=value items")
    parser.add_argument("--run-dir", type=Path, default=None,
                        help="the run folder (default: {output_dir}/{recipe}-{config hash})")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Command line entry point; returns the exit code (2 for a usage or config error)."""
    parser = _parser()
    try:
        args = parser.parse_intermixed_args(argv)
    except SystemExit as exit_:  # argparse exits on --help and on usage errors
        return int(exit_.code or 0)
    recipes = discover_recipes()
    if args.list:
        width = max((len(name) for name in recipes), default=0)
        for name, recipe in recipes.items():
            print(f"{name:<{width}}  {recipe.description}")
        return 0
    if args.recipe is None:
        parser.print_usage(sys.stderr)
        print("run.py: error: give a recipe name, or --list", file=sys.stderr)
        return 2
    if args.recipe not in recipes:
        known = ", ".join(recipes) or "none (install a metaloss domain package)"
        print(f"run.py: error: unknown recipe {args.recipe!r}; known recipes: {known}",
              file=sys.stderr)
        return 2
    recipe = recipes[args.recipe]
    try:
        defaults = recipe.load_defaults()
        if args.config is not None:
            defaults = apply_config_file(defaults, args.config)
        config = resolve_config(defaults, args.overrides)
        run_dir = run_dir_for(recipe.name, config, args.run_dir)
        check_run_dir(run_dir, config)
    except ConfigError as err:
        print(f"run.py: config error: {err}", file=sys.stderr)
        return 2
    run = Run(run_dir, config, recipe.name)
    if run.is_main:
        _write_config(run)
        processes = f"{run.world_size} process{'es' if run.world_size > 1 else ''}"
        print(f"run dir: {run.dir} ({processes})")
    try:
        recipe.main(run)
        run.finalize()
    finally:
        _end_processes()
    return 0


def _end_processes() -> None:
    """Tear down the process group a recipe opened: a live gloo group at exit can abort."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()

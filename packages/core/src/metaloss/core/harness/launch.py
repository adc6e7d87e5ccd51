"""The run launcher: find recipes, resolve their config, run them in a run folder.

``tools/run.py`` is this module's ``main``::

    python tools/run.py --list
    python tools/run.py RECIPE --show-config [key=value ...]
    accelerate launch tools/run.py RECIPE [--config FILE] [key=value ...] [--run-dir PATH]

Installed packages register ``Recipe`` objects under the entry-point group
``metaloss.recipes``, from light catalog modules whose ``main`` is a
``"module:function"`` reference. A recipe's YAML default config is overridden
by ``key=value`` items (dotted keys for nested sections, values parsed as YAML);
an unknown key, a value of the wrong type, or one its schema refuses (range,
choice, cross-key rule) is a one-line ``ConfigError`` before the recipe's code is
imported or a run folder written. The run folder is named after a hash of the
resolved config, so the same command started again resumes the same run.
"""

from __future__ import annotations

import argparse
import importlib
import json
import logging
import sys
from collections.abc import Callable
from dataclasses import dataclass
from importlib.metadata import entry_points
from pathlib import Path

from ..optional import import_extra
from .config import ConfigError, apply_config_file, check_run_dir, flat_config, resolve_config, run_dir_for
from .files import atomic_write
from .run import Run, rank_and_world_size

ENTRY_POINT_GROUP = "metaloss.recipes"
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Recipe:
    """A runnable experiment: ``main(run)`` does the work, reading ``run.config``.

    ``main`` is a callable or a ``"module:function"`` reference, imported only when
    the recipe runs: a package can then register its recipes (and their config
    schemas) from a light module, so that a bad config fails before the domain
    package's heavy imports (timm, torchvision, transformers) start.
    """

    name: str
    description: str
    default_config: Path  # a YAML file shipped inside the package
    main: Callable[[Run], None] | str
    schema: type | None = None  # a harness.schema.Section subclass: types, ranges, choices, meaning

    def __post_init__(self):
        if not isinstance(self.name, str) or not self.name:
            raise ValueError(f"Recipe.name must be a non-empty str, got {self.name!r}")
        if not isinstance(self.default_config, (str, Path)):
            raise TypeError(
                f"Recipe.default_config must be a path, got {type(self.default_config).__name__}"
            )
        if not callable(self.main) and not (isinstance(self.main, str) and ":" in self.main):
            raise TypeError(f"Recipe.main must be callable or a 'module:function' reference, "
                            f"got {self.main!r}")
        if self.schema is not None and not hasattr(self.schema, "model_validate"):
            raise TypeError(f"Recipe.schema must be a config schema class (harness.schema.Section), "
                            f"got {self.schema!r}")
        object.__setattr__(self, "default_config", Path(self.default_config))

    def run(self, run: Run) -> None:
        """Call the recipe's ``main`` on ``run`` (importing it first if it is a reference)."""
        main = self.main
        if isinstance(main, str):
            module, _, name = main.partition(":")
            main = getattr(importlib.import_module(module), name)
        main(run)

    def check(self, config: dict) -> None:
        """Raise ``ConfigError`` if ``config`` breaks the recipe's schema (a no-op without one)."""
        if self.schema is not None:
            from .schema import validate_config  # pydantic: the [launch] extra

            validate_config(self.schema, config)

    def describe(self, config: dict) -> list[tuple[str, object, str]]:
        """``(dotted key, value, meaning)`` of every key of ``config``."""
        if self.schema is not None:
            from .schema import describe_keys

            return describe_keys(self.schema, config)
        return [(key, value, "") for key, value in flat_config(config).items()]

    def load_defaults(self) -> dict:
        """The recipe's default config, read from its YAML file."""
        config = import_extra("yaml").safe_load(self.default_config.read_text())
        if not isinstance(config, dict):
            raise ConfigError(
                f"{self.default_config} must hold a YAML mapping, got {type(config).__name__}"
            )
        return config


def discover_recipes(only: str | None = None) -> dict[str, Recipe]:
    """The recipes installed packages register under ``metaloss.recipes``, by name.

    ``only``: load just that recipe (an empty dict if none has that name), so that
    running one recipe does not import every domain package's dependencies.
    """
    points = _entry_points()
    names = [only] if only is not None else list(points)
    return {name: _load(points[name]) for name in sorted(names) if name in points}


def _entry_points() -> dict:
    points, sources = {}, {}
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        # The same distribution found twice on sys.path lists its entry point twice.
        if sources.get(ep.name) == ep.value:
            continue
        if ep.name in sources:
            raise ValueError(
                f"two packages register the recipe {ep.name!r}: {sources[ep.name]} and {ep.value}"
            )
        points[ep.name], sources[ep.name] = ep, ep.value
    return points


def _load(ep) -> Recipe:
    recipe = ep.load()
    if not isinstance(recipe, Recipe):
        raise TypeError(
            f"entry point {ep.name!r} = {ep.value!r} in group {ENTRY_POINT_GROUP!r} must be "
            f"a metaloss.core.harness.Recipe, got {type(recipe).__name__}"
        )
    if recipe.name != ep.name:
        raise ValueError(f"entry point {ep.name!r} = {ep.value!r} loads a recipe named {recipe.name!r}")
    return recipe


def _show_config(recipe: Recipe, config: dict) -> None:
    rows = [(key, json.dumps(value), meaning) for key, value, meaning in recipe.describe(config)]
    width = max(len(key) + len(value) for key, value, _ in rows) + 3
    for key, value, meaning in rows:
        print(f"{key} = {value}".ljust(width) + (f"  # {meaning}" if meaning else ""))


def _configure_logging() -> None:
    """Status messages on stderr from rank 0; other ranks report warnings only."""
    rank, _ = rank_and_world_size()
    logging.basicConfig(level=logging.INFO if rank == 0 else logging.WARNING,
                        format="%(asctime)s %(message)s", datefmt="%H:%M:%S")


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
    parser.add_argument("--show-config", action="store_true",
                        help="print every config key with its value (defaults plus overrides) and its "
                             "meaning, then exit")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Command line entry point; returns the exit code (2 for a usage or config error)."""
    parser = _parser()
    try:
        args = parser.parse_intermixed_args(argv)
    except SystemExit as exit_:  # argparse exits on --help and on usage errors
        return int(exit_.code or 0)
    if args.list:
        recipes = discover_recipes()
        width = max((len(name) for name in recipes), default=0)
        for name, recipe in recipes.items():
            print(f"{name:<{width}}  {recipe.description}")
        return 0
    if args.recipe is None:
        parser.print_usage(sys.stderr)
        print("run.py: error: give a recipe name, or --list", file=sys.stderr)
        return 2
    recipes = discover_recipes(only=args.recipe)
    if args.recipe not in recipes:
        known = ", ".join(discover_recipes()) or "none (install a metaloss domain package)"
        print(f"run.py: error: unknown recipe {args.recipe!r}; known recipes: {known}",
              file=sys.stderr)
        return 2
    recipe = recipes[args.recipe]
    try:
        defaults = recipe.load_defaults()
        if args.config is not None:
            defaults = apply_config_file(defaults, args.config)
        config = resolve_config(defaults, args.overrides)
        if args.show_config:
            _show_config(recipe, config)
            return 0
        recipe.check(config)
        run_dir = run_dir_for(recipe.name, config, args.run_dir)
        check_run_dir(run_dir, config)
    except ConfigError as err:
        print(f"run.py: config error: {err}", file=sys.stderr)
        return 2
    _configure_logging()
    run = Run(run_dir, config, recipe.name)
    if run.is_main:
        _write_config(run)
        processes = f"{run.world_size} process{'es' if run.world_size > 1 else ''}"
        log.info("run dir: %s (%s)", run.dir, processes)
    try:
        recipe.run(run)
        run.finalize()
    finally:
        _end_processes()
    return 0


def _end_processes() -> None:
    """Tear down the process group a recipe opened: a live gloo group at exit can abort."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()

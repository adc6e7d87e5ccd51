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
import copy
import hashlib
import json
import sys
from collections.abc import Callable
from dataclasses import dataclass
from importlib.metadata import entry_points
from pathlib import Path

from .report import import_extra
from .runs import Run, atomic_write

ENTRY_POINT_GROUP = "metaloss.recipes"


class ConfigError(ValueError):
    """A config override or run folder that does not fit the recipe's config."""


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
                f"a metaloss.core.launch.Recipe, got {type(recipe).__name__}"
            )
        if recipe.name != ep.name:
            raise ValueError(
                f"entry point {ep.name!r} = {ep.value!r} loads a recipe named {recipe.name!r}"
            )
        recipes[ep.name], sources[ep.name] = recipe, ep.value
    return dict(sorted(recipes.items()))


def resolve_config(defaults: dict, overrides: list[str]) -> dict:
    """``defaults`` with ``key=value`` overrides applied, each checked against the default.

    Dotted keys address nested sections (``optim.lr=0.1``); values are parsed
    as YAML. The type of the default value decides what a value may be: a bool
    takes only a bool, an int an int (not a bool), a float an int or float
    (stored as float), a str a str, a list a list whose elements fit the
    default's first element, a section a mapping of its own keys; a default of
    None takes anything. Raises ``ConfigError`` otherwise.
    """
    if not isinstance(defaults, dict):
        raise TypeError(f"defaults must be a dict, got {type(defaults).__name__}")
    if isinstance(overrides, str) or not all(isinstance(o, str) for o in overrides):
        raise TypeError(f"overrides must be a list of 'key=value' strings, got {overrides!r}")
    config = copy.deepcopy(defaults)
    for item in overrides:
        key, value = _parse_override(item)
        *parents, leaf = key.split(".")
        section = config
        for depth, part in enumerate(parents):
            section = _child_section(section, part, ".".join(parents[: depth + 1]))
        _check_known(section, leaf, key)
        section[leaf] = _conform(key, section[leaf], value)
    return config


def apply_config_file(config: dict, path: str | Path) -> dict:
    """``config`` with a YAML file of overrides applied, checked like ``key=value`` items.

    The file holds a mapping of the config's own keys (nested sections may be
    partial); an unknown key or a wrong type is a ``ConfigError``.
    """
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file {path} does not exist")
    yaml = import_extra("yaml")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        raise ConfigError(f"config file {path} is not valid YAML ({err})") from err
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path} must hold a mapping of config keys, got {type(data).__name__}")
    config = copy.deepcopy(config)
    for key, value in data.items():
        _check_known(config, str(key), str(key))
        config[key] = _conform(str(key), config[key], value)
    return config


def _parse_override(item: str) -> tuple[str, object]:
    key, sep, text = item.partition("=")
    if not sep or not key or any(not part for part in key.split(".")):
        raise ConfigError(f"override {item!r} must look like key=value (e.g. optim.lr=0.1)")
    yaml = import_extra("yaml")
    try:
        return key, yaml.safe_load(text)
    except yaml.YAMLError as err:
        raise ConfigError(f"override {item!r}: the value is not valid YAML ({err})") from err


def _child_section(section: dict, part: str, path: str) -> dict:
    _check_known(section, part, path)
    child = section[part]
    if not isinstance(child, dict):
        raise ConfigError(f"{path} is a {type(child).__name__} ({child!r}), not a section")
    return child


def _check_known(section: dict, key: str, path: str) -> None:
    if key not in section:
        parent = path.rpartition(".")[0]
        where = f" in section {parent!r}" if parent else ""
        valid = ", ".join(map(str, section))
        raise ConfigError(f"unknown config key {path!r}; valid keys{where}: {valid}")


def _conform(key: str, default, value):
    """``value`` checked against (and, int -> float, cast to) the type of ``default``."""
    if default is None:
        return value
    if isinstance(default, dict):
        if not isinstance(value, dict):
            _wrong_type(key, "a section (mapping)", default, value)
        merged = dict(default)
        for sub, sub_value in value.items():
            path = f"{key}.{sub}"
            _check_known(default, sub, path)
            merged[sub] = _conform(path, default[sub], sub_value)
        return merged
    if isinstance(default, list):
        if not isinstance(value, list):
            _wrong_type(key, "list", default, value)
        if not default:
            return value
        return [_conform(f"{key}[{i}]", default[0], v) for i, v in enumerate(value)]
    if isinstance(default, bool):
        if not isinstance(value, bool):
            _wrong_type(key, "bool", default, value)
        return value
    if isinstance(default, int):
        if isinstance(value, bool) or not isinstance(value, int):
            _wrong_type(key, "int", default, value)
        return value
    if isinstance(default, float):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            _wrong_type(key, "float", default, value)
        return float(value)
    if isinstance(default, str):
        if not isinstance(value, str):
            _wrong_type(key, "str (quote it, e.g. key='1')", default, value)
        return value
    if not isinstance(value, type(default)):
        _wrong_type(key, type(default).__name__, default, value)
    return value


def _wrong_type(key: str, expected: str, default, value):
    raise ConfigError(
        f"{key}: expected {expected} like the default {default!r}, "
        f"got {value!r} ({type(value).__name__})"
    )


def config_hash(config: dict) -> str:
    """First 10 hex digits of the sha256 of the config's canonical JSON."""
    canonical = json.dumps(config, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()[:10]


def run_dir_for(recipe: str, config: dict, run_dir: str | Path | None = None) -> Path:
    """``run_dir`` if given, else ``{output_dir}/{recipe}-{config hash}``."""
    if run_dir is not None:
        return Path(run_dir)
    return Path(config.get("output_dir", "runs")) / f"{recipe}-{config_hash(config)}"


def check_run_dir(run_dir: Path, config: dict) -> None:
    """Raise ``ConfigError`` if ``run_dir`` already holds a run of another config."""
    saved_path = run_dir / "config.yaml"
    if not saved_path.exists():
        return
    saved = import_extra("yaml").safe_load(saved_path.read_text())
    differences = _differences(saved, config)
    if differences:
        shown = "; ".join(differences[:10])
        raise ConfigError(
            f"{run_dir} holds a run of another config ({shown}). Resume it with the same "
            "overrides, or start a new run with another --run-dir"
        )


def _differences(saved, now, path: str = "") -> list[str]:
    if isinstance(saved, dict) and isinstance(now, dict):
        keys = list(dict.fromkeys([*saved, *now]))
        return [
            d for k in keys
            for d in _differences(saved.get(k, "<absent>"), now.get(k, "<absent>"),
                                  f"{path}.{k}" if path else str(k))
        ]
    if saved == now and type(saved) is type(now):
        return []
    return [f"{path or 'config'}: {saved!r} in the folder, {now!r} now"]


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

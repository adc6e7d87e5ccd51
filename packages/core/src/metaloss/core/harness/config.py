"""A recipe's config: YAML defaults, checked overrides, its hash, and the run folder it owns.

``key=value`` overrides (dotted keys for nested sections, values parsed as YAML)
and YAML override files are applied to a recipe's defaults; an unknown key or a
value of the wrong type is a ``ConfigError`` before any work starts.
"""

from __future__ import annotations

import copy
import hashlib
import json
from pathlib import Path

from ..optional import import_extra


class ConfigError(ValueError):
    """A config override or run folder that does not fit the recipe's config."""


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


# The lists of units: a config that only adds to them is the same run grown, not another run.
GROWABLE_KEYS = ("seeds", "methods")


def check_run_dir(run_dir: Path, config: dict) -> None:
    """Raise ``ConfigError`` if ``run_dir`` already holds a run of another config.

    A config equal to the folder's but for more ``seeds`` or ``methods`` (every saved one kept) is
    the same run grown: its finished units stay finished and the new ones run beside them.
    """
    saved_path = run_dir / "config.yaml"
    if not saved_path.exists():
        return
    saved = import_extra("yaml").safe_load(saved_path.read_text())
    differences = _differences(_grown_into(saved, config), config)
    if differences:
        shown = "; ".join(differences[:10])
        raise ConfigError(
            f"{run_dir} holds a run of another config ({shown}). Resume it with the same "
            f"overrides (adding to {' or '.join(GROWABLE_KEYS)} is allowed, dropping is not), or "
            "start a new run with another --run-dir"
        )


def _grown_into(saved, now):
    """``saved`` with each growable list replaced by ``now``'s where ``now``'s keeps all of it."""
    if not (isinstance(saved, dict) and isinstance(now, dict)):
        return saved
    grown = dict(saved)
    for key in GROWABLE_KEYS:
        old, new = saved.get(key), now.get(key)
        if isinstance(old, list) and isinstance(new, list) and all(v in new for v in old):
            grown[key] = new
    return grown


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


def flat_config(config: dict, prefix: str = "") -> dict[str, object]:
    """``config`` with its nested sections as dotted keys (``optim.lr``), in order."""
    flat = {}
    for key, value in config.items():
        if isinstance(value, dict):
            flat |= flat_config(value, f"{prefix}{key}.")
        else:
            flat[f"{prefix}{key}"] = value
    return flat

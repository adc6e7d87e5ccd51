"""Opening a run folder that another command wrote: its config, unit results and selected weights.

Recipes that build on an earlier run (a ``kd`` run reusing a ``train_teacher``
run's teacher, ``coreset`` sampling from a ``kd`` run's lambdas) read it here,
through the same ``Unit`` API the run itself used.
"""

from __future__ import annotations

from pathlib import Path

from ..optional import import_extra
from .run import Run


def open_run(path: str | Path) -> Run:
    """The run in folder ``path`` (it must hold the ``config.yaml`` the launcher writes)."""
    if not isinstance(path, (str, Path)) or not str(path):
        raise TypeError(f"path must be a run folder (str or Path), got {path!r}")
    folder = Path(path)
    saved = folder / "config.yaml"
    if not saved.is_file():
        raise FileNotFoundError(f"{str(folder)!r} is not a run folder (no config.yaml)")
    config = import_extra("yaml").safe_load(saved.read_text())
    if not isinstance(config, dict):
        raise ValueError(f"{saved} must hold a mapping, got {type(config).__name__}")
    return Run(folder, config, folder.name)

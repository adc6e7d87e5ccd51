"""The run folder: where a run's metrics, checkpoints and results live, and how it resumes.

A run folder holds::

    config.yaml                  the resolved config (written by the launcher)
    metrics.jsonl                one JSON record per ``Run.log`` call
    checkpoints/<method>-seed<seed>.pt   the latest state of a unit, with RNG state
    results/<method>-seed<seed>.json     a finished unit's result
    results.json, summary.md, plots/     written by ``Run.finalize``

A *unit* is one (method, seed) of a run. A unit with a result is done and is
skipped when the run is started again; a unit with only a checkpoint resumes
from it, with the random number generators restored so that the resumed run
draws the same numbers the uninterrupted one would have.

Only rank 0 writes; every rank reads. Rank information comes from
``torch.distributed`` once initialised, else from the ``RANK``/``WORLD_SIZE``
environment variables that ``accelerate launch`` and ``torchrun`` set, so this
module does not depend on accelerate.
"""

from __future__ import annotations

import json
import math
import os
import random
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from .report import import_extra, write_report


def rank_and_world_size() -> tuple[int, int]:
    """This process's rank and the number of processes (0 and 1 when not distributed)."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank(), torch.distributed.get_world_size()
    return int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))


def atomic_write(path: Path, write: Callable[[Path], object]) -> None:
    """Call ``write(tmp)`` then rename ``tmp`` to ``path``.

    Readers and a kill at any moment see either the old file or the new one,
    never a half-written one.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def seed_everything(seed: int) -> None:
    """Seed Python's ``random``, numpy's global generator and torch (CPU and every GPU)."""
    _check_seed(seed)
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)  # also seeds every CUDA device


def capture_rng_state() -> dict:
    """The state of every generator ``seed_everything`` seeds, for ``restore_rng_state``."""
    state = {
        "python": random.getstate(),
        "numpy": np.random.get_state(),
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng_state(state: dict) -> None:
    """Put back the generators captured by ``capture_rng_state``."""
    if not isinstance(state, dict) or not {"python", "numpy", "torch"} <= state.keys():
        got = sorted(state) if isinstance(state, dict) else type(state).__name__
        raise ValueError(f"state must come from capture_rng_state(), got {got}")
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    # A checkpoint saved on a GPU machine can be resumed on CPU: skip what is not there.
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _check_seed(seed) -> int:
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise TypeError(f"seed must be an int, got {type(seed).__name__} {seed!r}")
    if not 0 <= seed < 2**32:  # numpy's global generator accepts no other seeds
        raise ValueError(f"seed must be in [0, 2**32), got {seed}")
    return seed


def _jsonable(value, where: str):
    """``value`` as plain JSON: tensors and numpy scalars become numbers, NaN becomes null."""
    if isinstance(value, (torch.Tensor, np.ndarray)):
        size = value.size if isinstance(value, np.ndarray) else value.numel()
        if size != 1:
            raise TypeError(f"{where} must be a scalar, got an array of shape {tuple(value.shape)}")
        value = value.item()
    elif isinstance(value, np.generic):
        value = value.item()
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        # JSON has no NaN/inf; null keeps the file readable by every JSON parser.
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): _jsonable(v, f"{where}[{k!r}]") for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v, f"{where}[{i}]") for i, v in enumerate(value)]
    raise TypeError(
        f"{where} must be a number, str, bool, None or a list/dict of them, "
        f"got {type(value).__name__}"
    )


class Run:
    """One run folder, shared by every process of a run.

    Attributes:
        dir: the folder.
        config: the resolved config.
        recipe: the recipe's name.
    ``rank``, ``world_size`` and ``is_main`` are read when asked, so they are
    right even if the recipe initialises ``torch.distributed`` after the run
    was created.
    """

    def __init__(self, dir: str | Path, config: dict, recipe: str):
        if not isinstance(dir, (str, Path)):
            raise TypeError(f"dir must be a str or Path, got {type(dir).__name__}")
        if not isinstance(config, dict):
            raise TypeError(f"config must be a dict, got {type(config).__name__}")
        if not isinstance(recipe, str) or not recipe:
            raise ValueError(f"recipe must be a non-empty str, got {recipe!r}")
        self.dir = Path(dir)
        self.config = config
        self.recipe = recipe
        # The order units were asked for: the summary's rows follow it.
        self._unit_order: list[tuple[str, int]] = []
        if self.is_main:
            self.dir.mkdir(parents=True, exist_ok=True)

    @property
    def rank(self) -> int:
        return rank_and_world_size()[0]

    @property
    def world_size(self) -> int:
        return rank_and_world_size()[1]

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def log(self, record: dict) -> None:
        """Append ``record`` plus ``"time"`` (unix seconds) to ``metrics.jsonl`` (rank 0)."""
        if not isinstance(record, dict):
            raise TypeError(f"record must be a dict, got {type(record).__name__}")
        if "time" in record:
            raise ValueError("record must not contain 'time': log() adds it")
        line = json.dumps(_jsonable({**record, "time": time.time()}, "record"))
        if self.is_main:
            with open(self.dir / "metrics.jsonl", "a") as f:
                f.write(line + "\n")

    def unit(self, method: str, seed: int) -> Unit:
        """The unit for one (method, seed) of this run."""
        unit = Unit(self, method, seed)
        if (method, seed) not in self._unit_order:
            self._unit_order.append((method, seed))
        return unit

    def progress(self, iterable, **tqdm_kwargs):
        """``iterable`` wrapped in a tqdm bar on stderr, shown on rank 0 only."""
        tqdm = import_extra("tqdm").tqdm
        kwargs = {"file": sys.stderr, "disable": not self.is_main, "dynamic_ncols": True}
        return tqdm(iterable, **{**kwargs, **tqdm_kwargs})

    def finalize(self, metrics: list[str] | None = None) -> None:
        """Write ``results.json``, ``summary.md`` and ``plots/`` and print the table (rank 0)."""
        if not self.is_main:
            return
        table = write_report(self.dir, self.recipe, metrics, order=self._unit_order)
        print(table)

    def __repr__(self) -> str:
        return f"Run(dir={str(self.dir)!r}, recipe={self.recipe!r})"


class Unit:
    """One (method, seed) of a run: its checkpoint and its result.

    Checkpoints are saved and results written by rank 0 only, each atomically,
    so a kill at any moment leaves either the old or the new file.
    """

    def __init__(self, run: Run, method: str, seed: int):
        if not isinstance(method, str) or not method:
            raise ValueError(f"method must be a non-empty str, got {method!r}")
        if any(sep in method for sep in ("/", "\\", os.sep)) or method in (".", ".."):
            raise ValueError(f"method must not contain path separators, got {method!r}")
        self.run = run
        self.method = method
        self.seed = _check_seed(seed)
        name = f"{method}-seed{seed}"
        self.checkpoint_path = run.dir / "checkpoints" / f"{name}.pt"
        self.result_path = run.dir / "results" / f"{name}.json"

    @property
    def done(self) -> bool:
        """Whether the unit has a result (then it is not trained again)."""
        return self.result_path.exists()

    @property
    def result(self) -> dict | None:
        """The finished unit's result, or None if it is not done."""
        return json.loads(self.result_path.read_text()) if self.done else None

    def load_checkpoint(self, map_location="cpu") -> dict | None:
        """The last saved state, or None; restores the RNG state saved with it."""
        if not self.checkpoint_path.exists():
            return None
        # weights_only=False: the state holds RNG states and optimizer/scheduler
        # dicts; the file was written by this run, not downloaded.
        state = torch.load(self.checkpoint_path, map_location=map_location, weights_only=False)
        restore_rng_state(state["rng"])
        return state

    def save_checkpoint(self, state: dict) -> None:
        """Save ``state`` plus the current RNG state (key ``"rng"``), rank 0 only."""
        if not isinstance(state, dict):
            raise TypeError(f"state must be a dict, got {type(state).__name__}")
        if "rng" in state:
            raise ValueError("state must not contain 'rng': save_checkpoint() adds it")
        if not self.run.is_main:
            return
        full = {**state, "rng": capture_rng_state()}
        atomic_write(self.checkpoint_path, lambda tmp: torch.save(full, tmp))

    def finish(self, result: dict) -> None:
        """Write ``{"method", "seed", **result}`` as the unit's result (rank 0).

        The checkpoint stays: a recipe may reload a finished unit's model from it.
        """
        if not isinstance(result, dict):
            raise TypeError(f"result must be a dict, got {type(result).__name__}")
        clash = sorted({"method", "seed"} & result.keys())
        if clash:
            raise ValueError(f"result must not contain {clash}: finish() adds them")
        record = _jsonable({"method": self.method, "seed": self.seed, **result}, "result")
        if self.run.is_main:
            text = json.dumps(record, indent=2) + "\n"
            atomic_write(self.result_path, lambda tmp: tmp.write_text(text))

    def __repr__(self) -> str:
        return f"Unit(method={self.method!r}, seed={self.seed}, done={self.done})"

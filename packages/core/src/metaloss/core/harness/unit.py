"""A unit of a run: one (method, seed), with its checkpoint and result."""

from __future__ import annotations

import json
import os
from typing import TYPE_CHECKING

import torch

from .files import atomic_write, to_jsonable
from .seeding import capture_rng_state, check_seed, restore_rng_state

if TYPE_CHECKING:
    from .run import Run


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
        self.seed = check_seed(seed)
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
        record = to_jsonable({"method": self.method, "seed": self.seed, **result}, "result")
        if self.run.is_main:
            text = json.dumps(record, indent=2) + "\n"
            atomic_write(self.result_path, lambda tmp: tmp.write_text(text))

    def __repr__(self) -> str:
        return f"Unit(method={self.method!r}, seed={self.seed}, done={self.done})"

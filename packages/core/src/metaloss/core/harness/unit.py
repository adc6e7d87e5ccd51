"""A unit of a run: one (method, seed), with its checkpoint and result."""

from __future__ import annotations

import json
import os
from typing import TYPE_CHECKING

import torch

from .files import atomic_write, to_jsonable
from .seeding import capture_rng_state, check_seed, restore_rng_state

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Mapping

    from torch import nn

    from .epochs import Selected
    from .run import Run

# The keys of a unit's checkpoint that the harness owns; a recipe's stateful objects use other names.
EPOCH, MODEL, SELECTED_MODEL, SELECTOR, RNG = "epoch", "model", "best_model", "selector", "rng"
RESERVED_KEYS = (EPOCH, MODEL, SELECTED_MODEL, SELECTOR, RNG)


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
        # The final states of the recipe's ``restore`` objects, small, kept beside the result: a
        # finished unit's checkpoint (the model, the optimiser) may be dropped to save space.
        self.state_path = run.dir / "results" / f"{name}.state.pt"

    @property
    def done(self) -> bool:
        """Whether the unit has a result (then it is not trained again)."""
        return self.result_path.exists()

    @property
    def result(self) -> dict | None:
        """The finished unit's result, or None if it is not done."""
        return json.loads(self.result_path.read_text()) if self.done else None

    def read_checkpoint(self, map_location="cpu") -> dict | None:
        """The last saved state, or None; the random generators are left as they are."""
        if not self.checkpoint_path.exists():
            return None
        # weights_only=False: the state holds RNG states and optimizer/scheduler
        # dicts; the file was written by this run, not downloaded.
        return torch.load(self.checkpoint_path, map_location=map_location, weights_only=False)

    def load_checkpoint(self, map_location="cpu") -> dict | None:
        """The last saved state, or None, to resume from: restores the RNG state saved with it."""
        state = self.read_checkpoint(map_location)
        if state is not None:
            restore_rng_state(state[RNG])
        return state

    def selected_model(self, map_location="cpu") -> dict:
        """The model weights selected on validation data (the state dict), RNG untouched."""
        state = self.read_checkpoint(map_location)
        if state is None or SELECTED_MODEL not in state:
            raise FileNotFoundError(f"{self.checkpoint_path} holds no selected model of {self!r}")
        return state[SELECTED_MODEL]

    def restorable(self, model: bool = False, names: Iterable[str] = ()) -> bool:
        """Whether ``train_or_load`` can give back what it is asked for: always for a unit still to
        train; for a finished one, whether its selected weights (``model``) and the states of the
        objects ``names`` are still saved (the state file beside the result, or the checkpoint)."""
        return not self.done or self._saved(names, model) is not None

    def saved_state(self, name: str) -> object | None:
        """The last saved state of the recipe object ``name`` (kept beside the result, else in the
        checkpoint), or None if neither holds it; the random generators are left as they are."""
        saved = self._saved([name])
        return None if saved is None else saved[name]

    def _saved(self, names: Iterable[str], model: bool = False) -> dict | None:
        """The saved states of ``names`` (the kept ones first, the checkpoint's for the rest) and, with
        ``model``, the selected weights under ``SELECTED_MODEL``; None if any of them is gone."""
        names = set(names)
        kept = {}
        if self.state_path.exists():  # weights_only=False: state dicts this run wrote
            kept = torch.load(self.state_path, map_location="cpu", weights_only=False)
        wanted = (names - kept.keys()) | ({SELECTED_MODEL} if model else set())  # from the checkpoint
        checkpoint = (self.read_checkpoint() or {}) if wanted else {}
        if not wanted <= checkpoint.keys():
            return None
        return {**{name: kept[name] for name in names & kept.keys()}, **{k: checkpoint[k] for k in wanted}}

    def train_or_load(self, model: nn.Module | None, train: Callable[[], Selected],
                      restore: Mapping[str, object] | None = None) -> dict:
        """The one lifecycle of a unit: train it once, afterwards load what it learnt.

        Not done: ``train()`` returns the ``Selected`` epoch; its weights go into
        ``model``, the final states of the objects in ``restore`` (name -> object
        with ``state_dict`` / ``load_state_dict``, e.g. an AMAL table) are kept
        beside the result, and its metrics become the unit's result. Done: the
        selected weights are loaded into ``model`` from the unit's last
        checkpoint and the objects in ``restore`` from their kept states (or that
        checkpoint), without touching the random generators; if any of these is
        gone, ``FileNotFoundError`` (ask ``restorable`` first to do without).
        ``model=None`` and no ``restore``: the caller needs only the result.
        Returns the result's metrics (without ``method`` and ``seed``).
        """
        restore = dict(restore or {})
        if self.done:
            if model is not None or restore:
                saved = self._saved(restore, model is not None)
                if saved is None:
                    raise FileNotFoundError(
                        f"{self!r} is finished but what it is asked to restore (model: {model is not None}, "
                        f"objects: {sorted(restore)}) is gone from {self.state_path} and "
                        f"{self.checkpoint_path}; ask restorable() first, or delete {self.result_path} "
                        "to train it again")
                if model is not None:
                    model.load_state_dict(saved[SELECTED_MODEL])
                for name, obj in restore.items():
                    obj.load_state_dict(saved[name])
            return {k: v for k, v in self.result.items() if k not in ("method", "seed")}
        selected = train()
        if model is not None:
            model.load_state_dict(selected.state)
        if restore and self.run.is_main:
            states = {name: obj.state_dict() for name, obj in restore.items()}
            atomic_write(self.state_path, lambda tmp: torch.save(states, tmp))
        self.finish(selected.metrics)
        return selected.metrics

    def save_checkpoint(self, state: dict) -> None:
        """Save ``state`` plus the current RNG state (key ``"rng"``), rank 0 only."""
        if not isinstance(state, dict):
            raise TypeError(f"state must be a dict, got {type(state).__name__}")
        if RNG in state:
            raise ValueError(f"state must not contain {RNG!r}: save_checkpoint() adds it")
        if not self.run.is_main:
            return
        full = {**state, RNG: capture_rng_state()}
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

"""Seeding and the random state a checkpoint carries, so a resumed run draws the same numbers."""

from __future__ import annotations

import random

import numpy as np
import torch


def seed_everything(seed: int) -> None:
    """Seed Python's ``random``, numpy's global generator and torch (CPU and every GPU)."""
    check_seed(seed)
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


def check_seed(seed) -> int:
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise TypeError(f"seed must be an int, got {type(seed).__name__} {seed!r}")
    if not 0 <= seed < 2**32:  # numpy's global generator accepts no other seeds
        raise ValueError(f"seed must be in [0, 2**32), got {seed}")
    return seed

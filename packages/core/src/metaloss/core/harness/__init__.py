"""The run harness the recipes share: launcher, config, run folder, epoch loop, report.

Needs the ``[launch]`` extra (pyyaml, pydantic, tqdm, matplotlib, accelerate)
for the parts that touch files, configs and processes.
"""

from .config import ConfigError
from .epochs import Selected, ValidationSelector, predict, sgd_epoch, train_epochs
from .files import atomic_write, to_jsonable
from .launch import Recipe
from .past_runs import open_run
from .run import Run, rank_and_world_size
from .seeding import capture_rng_state, restore_rng_state, seed_everything
from .unit import Unit

__all__ = [
    "ConfigError",
    "Recipe",
    "Run",
    "Unit",
    "Selected",
    "ValidationSelector",
    "atomic_write",
    "capture_rng_state",
    "open_run",
    "rank_and_world_size",
    "predict",
    "restore_rng_state",
    "seed_everything",
    "sgd_epoch",
    "to_jsonable",
    "train_epochs",
]

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

What a run shows: on a terminal, a progress bar per unit; redirected to a
file, one ``logging`` line per finished unit instead (a bar's refreshes would
fill the log). Status messages go through ``logging`` (rank 0); ``finalize``
prints the results table to stdout, since the table is the result. With the
config key ``trackers`` (accelerate tracker names, e.g. ``[tensorboard]``) every
logged metric also goes to those trackers, under ``<method>/seed<seed>/<metric>``
at step ``epoch``.

Only rank 0 writes; every rank reads. Rank information comes from
``torch.distributed`` once initialised, else from the ``RANK``/``WORLD_SIZE``
environment variables that ``accelerate launch`` and ``torchrun`` set, so this
module does not depend on accelerate.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from pathlib import Path

import torch

from ..optional import import_extra
from .config import flat_config
from .files import to_jsonable
from .report import write_report
from .unit import Unit

log = logging.getLogger(__name__)
_ID_KEYS = ("method", "seed", "epoch")  # a record's identity, not a metric


def _hyperparameters(config: dict) -> dict[str, object]:
    """``config`` flattened (``optim.lr``), lists and None as text: trackers take scalars only."""
    return {k: v if isinstance(v, (int, float, str)) else str(v) for k, v in flat_config(config).items()}


def rank_and_world_size() -> tuple[int, int]:
    """This process's rank and the number of processes (0 and 1 when not distributed)."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank(), torch.distributed.get_world_size()
    return int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))


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
        trackers = config.get("trackers", [])
        if not isinstance(trackers, (list, tuple)):
            raise TypeError(f"config['trackers'] must be a list of accelerate tracker names, "
                            f"got {trackers!r}")
        self.dir = Path(dir)
        self.config = config
        self.recipe = recipe
        # The order units were asked for: the summary's rows follow it.
        self._unit_order: list[tuple[str, int]] = []
        # An accelerate Accelerator holding the trackers, opened at the first log:
        # by then the recipe has built its own Accelerator, whose settings
        # (mixed precision, devices) an earlier default one would have fixed.
        self._tracking = None
        self._wandb_axes: set[str] = set()
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
        line = json.dumps(to_jsonable({**record, "time": time.time()}, "record"))
        if self.is_main:
            with open(self.dir / "metrics.jsonl", "a") as f:
                f.write(line + "\n")
            self._track(record)

    def _track(self, record: dict) -> None:
        """Send ``record``'s numbers to the config's ``trackers`` as ``<method>/seed<seed>/<metric>``."""
        if not self.config.get("trackers", []):
            return
        if self._tracking is None:
            self._tracking = self._open_trackers()
        unit = f"{record['method']}/seed{record['seed']}/" if "method" in record and "seed" in record else ""
        values = {f"{unit}{k}": v for k, v in record.items()
                  if k not in _ID_KEYS and isinstance(v, (int, float)) and not isinstance(v, bool)}
        if values:
            for tracker in self._tracking.trackers:
                self._send(tracker, values, unit, record.get("epoch"))

    def _open_trackers(self):
        """An Accelerator with the config's trackers started, the flattened config as hyperparameters."""
        names = list(self.config["trackers"])
        accelerator = import_extra("accelerate").Accelerator(log_with=names, project_dir=str(self.dir))
        accelerator.init_trackers(self.recipe, config=_hyperparameters(self.config))
        started = [t.name for t in accelerator.trackers]
        if len(started) < len(names):
            # accelerate drops a tracker whose package is missing, and warns only if none is left
            log.warning("trackers: asked for %s, started only %s; is each tracker's package installed?",
                        names, started)
        return accelerator

    def _send(self, tracker, values: dict, unit: str, epoch) -> None:
        if tracker.name != "wandb" or not unit or epoch is None:
            tracker.log(values, step=epoch)
            return
        # W&B drops a step lower than one it has seen, and every unit starts again
        # at epoch 0: each unit gets its own x axis, its epoch, not W&B's step.
        axis = f"{unit}epoch"
        if axis not in self._wandb_axes:
            tracker.tracker.define_metric(f"{unit}*", step_metric=axis)
            self._wandb_axes.add(axis)
        tracker.log({**values, axis: epoch})

    def unit(self, method: str, seed: int) -> Unit:
        """The unit for one (method, seed) of this run."""
        unit = Unit(self, method, seed)
        if (method, seed) not in self._unit_order:
            self._unit_order.append((method, seed))
        return unit

    def progress(self, iterable, desc: str = "", **tqdm_kwargs):
        """``iterable`` (a unit's epochs) with its progress shown on rank 0.

        On a terminal: a tqdm bar on stderr (``tqdm_kwargs`` go to it). Redirected
        to a file: no bar, whose refreshes would fill the log, but one log line
        when the loop ends, e.g. ``kd seed 3: 40 epochs in 1.7 s``.
        """
        if not isinstance(desc, str):
            raise TypeError(f"desc must be a str, got {type(desc).__name__}")
        if self.is_main and sys.stderr.isatty():
            tqdm = import_extra("tqdm").tqdm
            return tqdm(iterable, desc=desc, file=sys.stderr, dynamic_ncols=True, **tqdm_kwargs)
        return self._timed(iterable, desc)

    def _timed(self, iterable, desc: str):
        start, count = time.perf_counter(), 0
        for item in iterable:
            count += 1
            yield item
        if self.is_main and count:
            log.info("%s: %d epochs in %.1f s", desc or "loop", count, time.perf_counter() - start)

    def finalize(self, metrics: list[str] | None = None) -> None:
        """Write ``results.json``, ``summary.md`` and ``plots/``, end the trackers, print the table."""
        if not self.is_main:
            return
        table = write_report(self.dir, self.recipe, metrics, order=self._unit_order)
        self._close_trackers()
        log.info("report: %s", self.dir / "summary.md")
        print(table)

    def _close_trackers(self) -> None:
        if self._tracking is None:
            return
        # What Accelerator.end_training does, less destroying the process group:
        # on rank 0 alone that would strand the other ranks' collectives.
        for tracker in self._tracking.trackers:
            tracker.finish()
        self._tracking = None
        self._wandb_axes.clear()

    def __repr__(self) -> str:
        return f"Run(dir={str(self.dir)!r}, recipe={self.recipe!r})"


"""The ``kd`` recipe's teacher alone, with its early-stopped snapshots (AMAL paper appendix D.1).

A ``kd`` run reuses it with ``teacher.from_run=<this run's folder>``: one teacher
trained once serves many student runs. Same config file as ``kd`` (``kd.yaml``).
"""

from __future__ import annotations

from accelerate import Accelerator

from metaloss.core.harness import Run

from ..distillation import Guides, make_setting, scaled_epochs


def main(run: Run) -> None:
    accelerator = Accelerator()
    for seed in run.config["seeds"]:
        Guides(run, accelerator, make_setting(run.config, seed), scaled_epochs(run.config)).get("teacher")


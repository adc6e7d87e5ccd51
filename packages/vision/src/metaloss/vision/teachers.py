"""One teacher for every student seed: the settings the ``kd`` and ``wdue`` recipes share.

``teacher.seed`` (an int) trains the teacher once and lets it serve every student
seed; that is only sound with one train/validation split for all seeds
(``data.split_seed``), else the teacher would have learnt from other seeds'
validation images.
"""

from __future__ import annotations


def teacher_seed(cfg: dict, seed: int) -> int:
    """The seed of the teacher that serves students of ``seed``: its own, or the one shared teacher."""
    return seed if cfg["teacher"]["seed"] is None else cfg["teacher"]["seed"]


def check_shared_teacher(cfg: dict) -> None:
    if cfg["teacher"]["seed"] is not None and cfg["data"]["split_seed"] is None:
        raise ValueError("teacher.seed (one teacher for every seed) needs data.split_seed: with a split "
                         "per seed, the shared teacher would have trained on other seeds' validation images")

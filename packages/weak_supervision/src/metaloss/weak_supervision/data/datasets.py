"""YouTube, SMS and IMDB with the AMAL / SPEAR papers' splits (AMAL §5.3, appendix E).

Each set is cut into L (small labeled set), U (the rest of train, labels hidden),
V (validation, the size of L, for model selection and AMAL's meta steps) and the
test set:

- YouTube: L = the 100 train ids of ``labeled_ids.json``, U = the other 1586; V = 100
  drawn per seed from ``valid.json`` (120).
- SMS: L = the 69 ids of ``labeled_ids.json``, U = the other 4502; V = 69 drawn per
  seed from ``valid.json`` (500).
- IMDB: L = 284, U = 852, V = 284, redrawn per seed from the 1420-example pool of
  the shipped labeled/unlabeled/validation arrays; test 500.

SMS's shipped valid/test ``weak_labels`` rows do not belong to their texts (they
agree with the 73 rules applied to the texts no better than randomly paired rows,
while train agrees on every cell; see ``sms_rules``), so for SMS the valid and test
LF matrices are recomputed from the texts with ``sms_rules.SMS_RULES``.

The metric is the one the SPEAR and AMAL tables use: macro-F1 for SMS (13% spam),
accuracy for YouTube and IMDB.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from metaloss.core.checks import check_choice
from metaloss.weak_supervision_catalog import DATASETS

from ..labeling import ABSTAIN, apply_lfs, check_lf_matrix, lf_classes
from ..sms_rules import SMS_RULES
from .paths import data_root
from .wrench import WeakSplit, read_class_names, read_wrench

METRICS = {"youtube": "accuracy", "sms": "macro_f1", "imdb": "accuracy"}
IMDB_SIZES = {"labeled": 284, "unlabeled": 852, "validation": 284}


@dataclass
class RuleData:
    """One seed's L / U / V / test of a rule-denoising set."""

    name: str
    class_names: list[str]
    lf_classes: np.ndarray  # (m,) the class each LF votes for
    labeled: WeakSplit
    unlabeled: WeakSplit
    validation: WeakSplit
    test: WeakSplit
    metric: str

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def num_lfs(self) -> int:
        return len(self.lf_classes)


def load_rule_dataset(name: str, seed: int, root: str | Path | None = None) -> RuleData:
    """The paper's split of ``name`` for ``seed``, from ``root`` (default: see ``data_root``)."""
    check_choice("dataset", name, DATASETS)
    directory = data_root(root) / name
    if not directory.is_dir():
        raise FileNotFoundError(f"no {name} folder under {directory.parent}")
    rng = np.random.default_rng(seed)
    if name == "imdb":
        return _imdb(directory, rng)
    class_names = read_class_names(directory)
    train, valid, test = (read_wrench(directory, s) for s in ("train", "valid", "test"))
    if name == "sms":  # the shipped valid/test rows are misaligned with their texts (module docstring)
        for split in (valid, test):
            split.weak_labels = apply_lfs(SMS_RULES, split.texts)
    labeled_ids = json.loads((directory / "labeled_ids.json").read_text())["labeled_ids"]
    position = {i: k for k, i in enumerate(train.ids)}
    missing = [i for i in labeled_ids if i not in position]
    if missing:
        raise ValueError(f"{directory}/labeled_ids.json names ids not in train.json: {missing[:5]}")
    is_labeled = np.zeros(len(train), dtype=bool)
    is_labeled[[position[i] for i in labeled_ids]] = True
    if len(labeled_ids) > len(valid):
        raise ValueError(f"{name}: |L| = {len(labeled_ids)} exceeds the {len(valid)} validation examples")
    val_rows = np.sort(rng.choice(len(valid), size=len(labeled_ids), replace=False))
    matrix = np.concatenate([train.weak_labels, valid.weak_labels, test.weak_labels])
    return RuleData(
        name=name, class_names=class_names, lf_classes=lf_classes(matrix, len(class_names)),
        labeled=train.subset(np.flatnonzero(is_labeled)), unlabeled=train.subset(np.flatnonzero(~is_labeled)),
        validation=valid.subset(val_rows), test=test, metric=METRICS[name],
    )


def _imdb(directory: Path, rng: np.random.Generator) -> RuleData:
    path = directory / "imdb_genre.npz"
    if not path.exists():
        raise FileNotFoundError(f"no imdb_genre.npz in {directory}")
    arrays = np.load(path)
    classes = arrays["lf_classes"].astype(np.int64)

    def split(part: str) -> WeakSplit:
        weak = check_lf_matrix(arrays[f"{part}_weak_labels"], 2, name=f"imdb {part} weak labels")
        n = len(weak)
        return WeakSplit(ids=[f"{part}-{i}" for i in range(n)], weak_labels=weak,
                         labels=arrays[f"{part}_labels"].astype(np.int64),
                         features=arrays[f"{part}_features"].astype(np.float32))

    pool_parts = [split(p) for p in ("labeled", "unlabeled", "validation")]
    pool = WeakSplit(ids=sum((p.ids for p in pool_parts), []),
                     weak_labels=np.concatenate([p.weak_labels for p in pool_parts]),
                     labels=np.concatenate([p.labels for p in pool_parts]),
                     features=np.concatenate([p.features for p in pool_parts]))
    if len(pool) != sum(IMDB_SIZES.values()):
        raise ValueError(f"imdb pool has {len(pool)} examples, expected {sum(IMDB_SIZES.values())}")
    fired = pool.weak_labels != ABSTAIN
    if (pool.weak_labels[fired] != np.broadcast_to(classes, pool.weak_labels.shape)[fired]).any():
        raise ValueError("imdb weak labels disagree with lf_classes")
    order = rng.permutation(len(pool))
    a, b = IMDB_SIZES["labeled"], IMDB_SIZES["labeled"] + IMDB_SIZES["unlabeled"]
    return RuleData(
        name="imdb", class_names=["action", "romance"], lf_classes=classes,
        labeled=pool.subset(np.sort(order[:a])), unlabeled=pool.subset(np.sort(order[a:b])),
        validation=pool.subset(np.sort(order[b:])), test=split("test"), metric=METRICS["imdb"],
    )

"""How much of the label noise each finished noisy_labels model fitted, on its own training set.

For every finished unit of a run folder (fold models left out), the setting is rebuilt from the
saved config and seed (``make_noisy_data`` is deterministic) and the model at the selected epoch
and at the last epoch predicts the un-augmented training images. Printed per method, mean over
seeds:

- ``memorised``: share of corrupted training examples predicted as their *noisy* label;
- ``recovered``: share of corrupted training examples predicted as their *clean* label;
- ``clean_fit``: share of clean training examples predicted as their label.

Training data only: this explains a test gap (or its absence) without looking at test data.

    python benchmarks/noisy_labels_memorization.py results/noisy_labels_cifar10_cpu/symmetric
"""

from __future__ import annotations

import statistics
import sys

import torch

from metaloss.core.harness import open_run, predict
from metaloss.core.harness.unit import MODEL, SELECTED_MODEL
from metaloss.vision.models import create_model
from metaloss.vision.noisy_data import make_noisy_data
from metaloss.vision.noisy_methods import CoTeachingPair
from metaloss.vision.training import eval_batches


def fit_shares(model, data, truth) -> dict:
    plain = data.train.with_transform(data.val.transform)
    predicted = predict(model, (x for x, _ in eval_batches(plain, workers=0))).argmax(1)
    noisy, corrupted = data.train.labels, truth.corrupted
    share = lambda mask: float(mask.float().mean()) if mask.numel() else float("nan")  # noqa: E731
    return {"memorised": share((predicted == noisy)[corrupted]),
            "recovered": share((predicted == truth.labels)[corrupted]),
            "clean_fit": share((predicted == noisy)[~corrupted])}


def main() -> None:
    run = open_run(sys.argv[1])
    cfg = run.config
    rows: dict[tuple[str, str], list[dict]] = {}
    for seed in cfg["seeds"]:
        units = [run.unit(m, seed) for m in cfg["methods"]]
        units = [u for u in units if u.done]
        if not units:
            continue
        data, truth = make_noisy_data(cfg, seed)
        for unit in units:
            model = create_model(cfg["model"]["arch"], data)
            if unit.method == "coteaching":
                model = CoTeachingPair(model, create_model(cfg["model"]["arch"], data))
            state = unit.read_checkpoint()
            for when, key in (("selected", SELECTED_MODEL), ("last", MODEL)):
                model.load_state_dict(state[key])
                rows.setdefault((unit.method, when), []).append(fit_shares(model, data, truth))
    print("| method | epoch | n | memorised | recovered | clean_fit |\n|---|---|---|---|---|---|")
    for (method, when), shares in rows.items():
        keys = ("memorised", "recovered", "clean_fit")
        cells = [f"{statistics.mean(s[k] for s in shares):.3f}" for k in keys]
        print(f"| {method} | {when} | {len(shares)} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    with torch.no_grad():
        main()

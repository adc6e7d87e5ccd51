"""The example weights that l2rw and mwnet learned, in numbers (the data behind ``plots/weights.png``).

For every finished (or checkpointed) l2rw / mwnet unit of a noisy_labels run folder, each training
example's latest weight (``Diagnostics``, kept beside its result or in its checkpoint) is split by
whether its label was corrupted (the setting is rebuilt from the saved config and seed). Printed per unit:

- ``zero``: share of weighted examples whose weight is 0 (L2RW clamps negative meta-gradients to 0);
- ``mean_clean`` / ``mean_corrupted``: mean weight on clean / corrupted labels;
- ``clean_share_of_weight``: share of the total weight that sits on clean labels.

Training data only (the weights and which labels were flipped).

    python benchmarks/noisy_labels_weights.py results/noisy_labels_cifar10_cpu/symmetric
"""

from __future__ import annotations

import sys

import torch

from metaloss.core.harness import open_run
from metaloss.vision.noisy_data import make_noisy_data

WEIGHTING = ("l2rw", "mwnet")


def weight_shares(weights: torch.Tensor, corrupted: torch.Tensor) -> dict:
    seen = torch.isfinite(weights)
    w, bad = weights[seen].double(), corrupted[seen]
    return {"weighted": int(seen.sum()), "zero": float((w == 0).double().mean()),
            "mean_clean": float(w[~bad].mean()), "mean_corrupted": float(w[bad].mean()),
            "clean_share_of_weight": float(w[~bad].sum() / w.sum())}


def main() -> None:
    run = open_run(sys.argv[1])
    cfg = run.config
    keys = ("weighted", "zero", "mean_clean", "mean_corrupted", "clean_share_of_weight")
    print("| method | seed | " + " | ".join(keys) + " |\n|---|---|" + "---|" * len(keys))
    for seed in cfg["seeds"]:
        units = [run.unit(m, seed) for m in cfg["methods"] if m in WEIGHTING]
        saved = [(u, u.saved_state("diagnostics")) for u in units]
        saved = [(u, d) for u, d in saved if d is not None]
        if not saved:
            continue
        _, truth = make_noisy_data(cfg, seed)
        for unit, diagnostics in saved:
            table = diagnostics["weights"]["table"][:, 0]
            shares = weight_shares(table, truth.corrupted)
            cells = [f"{shares[k]:.4g}" for k in keys]
            print(f"| {unit.method} | {seed} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()

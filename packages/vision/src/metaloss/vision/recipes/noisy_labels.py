"""Learning from noisy labels and long tails: every method on the same data, seeds, noise and
selection rule (DML paper §5.1 and Tables 1-7; L2T-DLN supplement §5.1).

Per seed: one setting (``noisy_data.make_noisy_data``: noisy training pool, clean meta set of M
examples, noisy validation split, clean test set), then one unit per method
(``noisy_methods.METHOD_TRAINERS``). A method reads the meta set only if it needs one (l2rw,
mwnet); every method selects its epoch on the noisy validation split, and the result holds the
test accuracy there and at the last epoch, and the M it used.

Pictures in ``plots/``: validation and test accuracy per epoch of every method; the precision of
co-teaching's and DML's selections over training; the learned weights of l2rw and mwnet on
corrupted vs clean examples; DML's per-class selection ratios R_t(c) over training.
"""

from __future__ import annotations

import json
from functools import partial

from accelerate import Accelerator

from metaloss.core.harness import Run
from metaloss.vision_catalog import NOISY_METHODS

from ..noisy_data import make_noisy_data
from ..noisy_methods import METHOD_TRAINERS, Diagnostics, NoisyTrainer
from ..plots import plot_curves, plot_weight_histograms

WEIGHTING = ("l2rw", "mwnet")  # methods whose per-example weights are histogrammed


def main(run: Run) -> None:
    cfg = run.config
    accelerator = Accelerator()
    weights: dict[str, list] = {}
    for seed in cfg["seeds"]:
        data, truth = make_noisy_data(cfg, seed)
        for method in cfg["methods"]:
            unit = run.unit(method, seed)
            readable = data if NOISY_METHODS[method] else data.without_meta()  # the meta set only if needed
            trainer = NoisyTrainer(run, accelerator, readable, cfg)
            diagnostics = Diagnostics(truth, len(data.train))
            unit.train_or_load(None, partial(METHOD_TRAINERS[method], trainer, unit, diagnostics),
                               restore={"diagnostics": diagnostics} if method in WEIGHTING else None)
            if method in WEIGHTING:
                weights.setdefault(method, []).append((diagnostics.weights.table[:, 0], truth.corrupted))
    if run.is_main:
        records = [json.loads(line) for line in (run.dir / "metrics.jsonl").read_text().splitlines()]
        records = [r for r in records if r.get("method") in cfg["methods"]]
        plots = run.dir / "plots"
        plot_curves(records, {"val_acc": "validation accuracy (noisy labels)", "test_acc": "test accuracy"},
                    plots / "accuracy.png", f"{cfg['noise']['kind']} noise, rate {cfg['noise']['rate']}")
        plot_curves(records, {"selected_precision": "clean share of the selected examples",
                              "selected_fraction": "selected share of each batch"},
                    plots / "selection.png", "estimated accuracy of the selection (DML Figure 5)")
        if weights:
            plot_weight_histograms(weights, plots / "weights.png")
        for method in (m for m in cfg["methods"] if m.startswith("dml")):
            plot_curves(per_class_ratios(records, method), {"ratio": "R_t(c): selected share of class c"},
                        plots / f"ratios_{method}.png", f"{method}: per-class selection ratios (DML Fig. 4c)")


def per_class_ratios(records: list[dict], method: str) -> list[dict]:
    """``method``'s logged ``ratio_<c>`` as rows of a pseudo-method ``class <c>``, one line each in a plot."""
    return [{**r, "method": f"class {key[len('ratio_'):]}", "ratio": value}
            for r in records if r.get("method") == method
            for key, value in r.items() if key.startswith("ratio_")]

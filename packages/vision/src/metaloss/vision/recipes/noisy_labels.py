"""Learning from noisy labels and long tails: every method on the same data, seeds, noise and
selection rule (DML paper §5.1 and Tables 1-7; L2T-DLN supplement §5.1).

Per seed: one setting (``noisy_data.make_noisy_data``: noisy training pool, clean meta set of M
examples, noisy validation split, clean test set), then one unit per method
(``noisy_methods.METHOD_TRAINERS``). A method reads the meta set only if it needs one (l2rw,
mwnet); every method selects its epoch on the noisy validation split, and the result holds the
test accuracy there and at the last epoch, and the M it used.

Pictures in ``plots/``: validation and test accuracy per epoch of every method; the precision of
co-teaching's and DML's selections over training; the learned weights of l2rw, mwnet and the
reweighted L2T-DLN methods on corrupted vs clean examples; DML's per-class selection ratios R_t(c)
over training; L2T-DLN's loss surface at several points of training (the first seed at hand) and the gradient
its loss gives the student's logits beside CE's at the same logits (the supplement's Figure 1).
"""

from __future__ import annotations

import json
from functools import partial

from accelerate import Accelerator

from metaloss.core.harness import Run
from metaloss.vision_catalog import NOISY_METHODS

from ..noisy_data import make_noisy_data
from ..noisy_methods import METHOD_TRAINERS, Diagnostics, DLNSurfaces, NoisyTrainer
from ..plots import plot_curves, plot_loss_surfaces, plot_weight_histograms

WEIGHTING = ("l2rw", "mwnet", "dln_dr", "l2t_dln_dr")  # methods whose per-example weights are histogrammed
DLN_METHODS = ("dln", "dln_dr", "l2t_dln", "l2t_dln_dr")  # their loss surfaces are drawn


def main(run: Run) -> None:
    cfg = run.config
    accelerator = Accelerator()
    weights: dict[str, list] = {}
    surfaces: dict[str, tuple[int, DLNSurfaces]] = {}  # method -> the first seed whose surfaces are at hand
    for seed in cfg["seeds"]:
        data, truth = make_noisy_data(cfg, seed)
        for method in cfg["methods"]:
            unit = run.unit(method, seed)
            readable = data if NOISY_METHODS[method] else data.without_meta()  # the meta set only if needed
            trainer = NoisyTrainer(run, accelerator, readable, cfg)
            diagnostics = Diagnostics(truth, len(data.train))
            restore = {"diagnostics": diagnostics} if method in WEIGHTING else {}
            train = partial(METHOD_TRAINERS[method], trainer, unit, diagnostics)
            if method in DLN_METHODS:
                seen = DLNSurfaces()
                train, restore = partial(train, surfaces=seen), {**restore, "dln_surfaces": seen}
            if not unit.restorable(names=restore):
                print(f"{unit!r}: its diagnostics are gone with its checkpoint; its result stays, "
                      "its plots are left out")
                restore = {}
            unit.train_or_load(None, train, restore=restore or None)
            if method in WEIGHTING and "diagnostics" in restore:
                weights.setdefault(method, []).append((diagnostics.weights.table[:, 0], truth.corrupted))
            if method in DLN_METHODS and "dln_surfaces" in restore:
                surfaces.setdefault(method, (seed, seen))
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
        for method, (seed, drawn) in surfaces.items():
            plot_loss_surfaces(drawn.surfaces, DLNSurfaces.GRID, plots / f"loss_surface_{method}.png",
                               f"{method}: the DLN over its 1-vs-1 pair (seed {seed})")
        dln_methods = [m for m in cfg["methods"] if m in DLN_METHODS]
        if dln_methods:
            plot_curves(logit_gradients(records, dln_methods),
                        {"logit_gradient": "L1 norm of d loss / d logits, per step"},
                        plots / "logit_gradients.png", "the gradient the student receives (L2T-DLN Fig. 1)")


def logit_gradients(records: list[dict], methods: list[str]) -> list[dict]:
    """Each method's logged DLN and CE logit gradients as pseudo-methods ``<method>: DLN`` and
    ``<method>: CE at the same logits``, so one panel shows both."""
    names = {"dln_logit_gradient": "DLN", "ce_logit_gradient": "CE at the same logits"}
    return [{**r, "method": f"{r['method']}: {name}", "logit_gradient": r[key]}
            for r in records if r.get("method") in methods
            for key, name in names.items() if key in r]


def per_class_ratios(records: list[dict], method: str) -> list[dict]:
    """``method``'s logged ``ratio_<c>`` as rows of a pseudo-method ``class <c>``, one line each in a plot."""
    return [{**r, "method": f"class {key[len('ratio_'):]}", "ratio": value}
            for r in records if r.get("method") == method
            for key, value in r.items() if key.startswith("ratio_")]

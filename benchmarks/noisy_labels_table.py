"""The tables of the noisy_labels CPU reproductions, from the run folders of noisy_labels_cifar10_cpu.sh
(issues 13 and 14) and l2t_dln_cifar10_cpu.sh (issue 15: ``--settings clean two_similar``).

One table per setting (symmetric, longtail, instance by default) that has finished units, pooling the folders
``<setting>`` and ``<setting>_<tag>`` (issue 14's dml runs; a tag other than ``dml`` marks an
ablation, and ``clean_lr0.3`` a student learning rate, shown after the method's name): test accuracy at
the epoch selected on the noisy validation split and at the last epoch, the selected epoch, the
clean meta examples each method read, mean +- std over the seeds finished so far (column n).
Confident learning's fold models (``cl_fold*``) are left out: they are part of its cost.

It also draws, per setting, every method's validation and test accuracy per epoch
(``<setting>_accuracy.png``) and the precision of the selections of co-teaching and DML per epoch
(``<setting>_selection.png``, DML Figure 5) into the runs folder.

``--epochs ce,dml`` also prints those methods' per-epoch rows (accuracy, selection, DML's feedback,
its teacher's validation accuracy and the clean share of its pseudo labels beside that of the given
labels, the logit gradients of the DLN and of CE for L2T-DLN).

    python benchmarks/noisy_labels_table.py [results/noisy_labels_cifar10_cpu] [--epochs ce,coteaching,dml]
    python benchmarks/noisy_labels_table.py results/l2t_dln_cifar10_cpu --settings clean two_similar
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from metaloss.core.harness.report import collect_results, summary_table
from metaloss.vision.plots import plot_curves

METRICS = ["test_acc", "last_test_acc", "best_epoch", "meta_size", "selected_precision", "selected_fraction"]
EPOCH_METRICS = ["val_acc", "test_acc", "selected_fraction", "selected_precision", "feedback_sum",
                 "teacher_val_acc", "pseudo_label_accuracy", "given_label_accuracy",
                 "dln_logit_gradient", "ce_logit_gradient"]


def _named(row: dict, tag: str) -> dict:
    """``row`` with the folder's ablation tag after its method's name; none where the folder only adds
    that method to the setting (``symmetric_dml``, ``instance_gce``)."""
    return {**row, "method": f"{row['method']} [{tag}]"} if tag not in ("", row["method"]) else row


def epoch_table(records: list[dict], methods: list[str]) -> str:
    """One row per (method, seed, epoch) of ``methods``, the later row winning for a resumed epoch."""
    latest = {(r["method"], r["seed"], r["epoch"]): r
              for r in records if "epoch" in r and r["method"] in methods}
    header = "| method | seed | epoch | " + " | ".join(EPOCH_METRICS) + " |"
    lines = [header, "|---" * (3 + len(EPOCH_METRICS)) + "|"]
    order = sorted(latest.items(), key=lambda kv: (methods.index(kv[0][0]), kv[0][1:]))
    for (method, seed, epoch), r in order:
        values = [f"{r[k]:.4g}" if isinstance(r.get(k), (int, float)) else "-" for k in EPOCH_METRICS]
        lines.append(f"| {method} | {seed} | {epoch} | " + " | ".join(values) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("root", nargs="?", default="results/noisy_labels_cifar10_cpu")
    parser.add_argument("--epochs", default="", help="comma-separated methods whose per-epoch rows to print")
    parser.add_argument("--settings", nargs="+", default=["symmetric", "longtail", "instance"])
    args = parser.parse_args()
    root = Path(args.root)
    for setting in args.settings:
        folders = [f for f in [root / setting, *sorted(root.glob(f"{setting}_*"))]
                   if (f / "metrics.jsonl").exists()]
        results, records = [], []
        for folder in folders:
            tag = folder.name[len(setting) + 1:]
            if (folder / "results").is_dir():
                results += [_named(r, tag) for r in collect_results(folder)]
            lines = (folder / "metrics.jsonl").read_text().splitlines()
            records += [_named(r, tag) for r in map(json.loads, lines) if "method" in r]
        results = [r for r in results if not str(r["method"]).startswith("cl_fold")]
        if not records:
            continue
        if results:
            shown = ", ".join(str(f) for f in folders)
            print(f"### {setting} ({shown})\n\n{summary_table(results, METRICS)}")
        records = [r for r in records if not str(r["method"]).startswith("cl_fold")]
        if args.epochs:
            print(f"\n{epoch_table(records, args.epochs.split(','))}\n")
        # plot what selection read: balanced accuracy where the recipe selected on it (long tails)
        val = ({"val_balanced_acc": "validation balanced accuracy (the selection metric)"}
               if any("val_balanced_acc" in r for r in records)
               else {"val_acc": "validation accuracy (labels as corrupted)"})
        plot_curves(records, {**val, "test_acc": "test accuracy"},
                    root / f"{setting}_accuracy.png", f"{setting}: every method, mean and range over seeds")
        plot_curves(records, {"selected_precision": "clean share of the selected examples",
                              "selected_fraction": "selected share of each batch"},
                    root / f"{setting}_selection.png", f"{setting}: the selections' precision (DML Figure 5)")


if __name__ == "__main__":
    main()

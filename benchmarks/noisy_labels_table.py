"""The tables of issue 13's CPU reproduction, from the run folders of noisy_labels_cifar10_cpu.sh.

One table per setting (symmetric, longtail, instance) that has finished units, pooling the folders
``<setting>`` and ``<setting>_<tag>`` (issue 14's dml runs; a tag other than ``dml`` marks an
ablation, shown after the method's name): test accuracy at
the epoch selected on the noisy validation split and at the last epoch, the selected epoch, the
clean meta examples each method read, mean +- std over the seeds finished so far (column n).
Confident learning's fold models (``cl_fold*``) are left out: they are part of its cost.

    python benchmarks/noisy_labels_table.py [runs/noisy_labels_cifar10_cpu]
"""

from __future__ import annotations

import sys
from pathlib import Path

from metaloss.core.harness.report import collect_results, summary_table

METRICS = ["test_acc", "last_test_acc", "best_epoch", "meta_size", "selected_precision", "selected_fraction"]


def main() -> None:
    root = Path(sys.argv[1] if len(sys.argv) > 1 else "runs/noisy_labels_cifar10_cpu")
    for setting in ("symmetric", "longtail", "instance"):
        folders = [f for f in [root / setting, *sorted(root.glob(f"{setting}_*"))]
                   if (f / "results").is_dir()]
        results = []
        for folder in folders:
            tag = folder.name[len(setting) + 1:]
            for r in collect_results(folder):
                if not str(r["method"]).startswith("cl_fold"):
                    ablation = tag not in ("", "dml")
                    results.append({**r, "method": f"{r['method']} [{tag}]"} if ablation else r)
        if results:
            shown = ", ".join(str(f) for f in folders)
            print(f"### {setting} ({shown})\n\n{summary_table(results, METRICS)}")


if __name__ == "__main__":
    main()

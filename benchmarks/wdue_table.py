"""WDUE's comparison from finished ``wdue`` runs: each method against ``unweighted``, seed by seed.

Test accuracy is at the validation-selected epoch (x100). A gain is the per-seed
difference to ``unweighted`` of the same seed, averaged over seeds (std in
brackets); runs given together must share their teacher and pretrained students
(the script checks that the teacher's and the pretrained students' results agree).
Runs without a suffix pool their seeds (e.g. seeds 3-4 run in another folder);
a run's methods can be renamed with ``DIR=SUFFIX`` (e.g. the every-epoch run's
``weighted`` becomes ``weighted_SUFFIX``). The estimation share is the k-NN fit
and prediction (``estimate_s``), then also the student's passes over V and S_u
(``inference_s``), over step 4's training time (``train_s``).

    python benchmarks/wdue_table.py RUN_DIR [RUN_DIR=SUFFIX ...]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

SHARED_UNITS = ("teacher", "pretrain")
ORDER = ("unweighted", "weighted", "fidelity", "composition", "oracle_filter")  # the recipe's methods


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", help="run folders, each optionally DIR=SUFFIX")
    args = parser.parse_args()
    results: dict[str, dict[int, dict]] = {}
    shared: dict[tuple[str, int], float] = {}
    for spec in args.runs:
        folder, _, suffix = spec.partition("=")
        for path in sorted((Path(folder) / "results").glob("*.json")):
            r = json.loads(path.read_text())
            if r["method"] in SHARED_UNITS:
                key = (r["method"], r["seed"])
                if shared.setdefault(key, r["test_acc"]) != r["test_acc"]:
                    raise SystemExit(
                        f"{folder}: its {r['method']} seed {r['seed']} differs from the first run's; runs "
                        "compared seed by seed must share the teacher and pretrained students")
                continue
            name = f"{r['method']}_{suffix}" if suffix else r["method"]
            results.setdefault(name, {})[r["seed"]] = r
    if "unweighted" not in results:
        raise SystemExit("no unweighted results among the runs: gains are measured against unweighted")
    base = results["unweighted"]
    teacher = sorted({v for (unit, _), v in shared.items() if unit == "teacher"})
    print(f"teacher test accuracy: {', '.join(f'{100 * t:.2f}' for t in teacher)}\n")
    print("| method | seeds | test | gain over unweighted (per seed) | weight, teacher wrong / right "
          "| estimation share of step 4 (with inference) |")
    print("|---|---|---|---|---|---|")
    def order(name: str) -> tuple:
        method = next((m for m in ORDER if name == m or name.startswith(m + "_")), name)
        return ORDER.index(method) if method in ORDER else len(ORDER), name

    for name, by_seed in sorted(results.items(), key=lambda item: order(item[0])):
        seeds = sorted(set(by_seed) & set(base))
        test = [100 * by_seed[s]["test_acc"] for s in seeds]
        gains = [100 * (by_seed[s]["test_acc"] - base[s]["test_acc"]) for s in seeds]
        rows = [by_seed[s] for s in seeds]
        wrong = np.mean([r["weight_teacher_wrong"] for r in rows])
        right = np.mean([r["weight_teacher_right"] for r in rows])
        share = np.mean([r["estimate_s"] / r["train_s"] for r in rows])
        share_all = np.mean([(r["estimate_s"] + r["inference_s"]) / r["train_s"] for r in rows])
        gain = "-" if name == "unweighted" else f"{np.mean(gains):+.2f} ({np.std(gains, ddof=1):.2f}): " + \
            ", ".join(f"{g:+.2f}" for g in gains)
        print(f"| {name} | {len(seeds)} | {np.mean(test):.2f} +- {np.std(test, ddof=1):.2f} | {gain} "
              f"| {wrong:.3f} / {right:.3f} | {100 * share:.3f}% ({100 * share_all:.2f}%) |")


if __name__ == "__main__":
    main()

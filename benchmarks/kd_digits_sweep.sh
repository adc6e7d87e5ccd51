#!/usr/bin/env bash
# Validation-only choice of kd_digits' AMAL knobs (lambda learning rate, L in epochs).
# Prints mean validation accuracy over the recipe's 5 seeds for each setting; the
# test column is printed too but is never used to choose. Run from the repo root:
#   bash benchmarks/kd_digits_sweep.sh
set -euo pipefail
out=${OUT_DIR:-runs/sweep}
for lr in 20.0 50.0 200.0 500.0; do
  for every in 1 2 5; do
    .venv/bin/python tools/run.py kd_digits methods=[amal] amal.lr=$lr amal.every=$every \
      output_dir="$out" > /dev/null 2>&1
    dir=$(ls -td "$out"/kd_digits-* | head -1)
    .venv/bin/python - "$dir" "$lr" "$every" <<'PY'
import json, statistics, sys
rows = [r for r in json.load(open(f"{sys.argv[1]}/results.json")) if r["method"] == "amal"]
val = statistics.mean(r["val_acc"] for r in rows); test = statistics.mean(r["test_acc"] for r in rows)
print(f"amal.lr={sys.argv[2]:>6} amal.every={sys.argv[3]}  val_acc {val:.4f}  (test_acc {test:.4f}, not used)")
PY
  done
done

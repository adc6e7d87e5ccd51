#!/usr/bin/env bash
# Issue 5's CPU-scale reproduction: CIFAR-10, N in {7500, 10000} labeled + 2000 validation, 8000
# unlabeled, ResNet-20 teacher -> ResNet-8 student, unweighted vs WDUE-weighted vs oracle filter,
# 3 student seeds. Needs the full CIFAR-10 (a data root with cifar10/{train,test}.parquet):
#   METALOSS_DATA=../shared/data bash benchmarks/wdue_cifar10_cpu.sh [key=value ...]
# NS="7500" runs one N; OUT_DIR names the output folder.
set -euo pipefail
config=packages/vision/src/metaloss/vision/recipes/configs/wdue_cifar10_cpu.yaml
out=${OUT_DIR:-runs/wdue_cifar10_cpu}
for n in ${NS:-7500 10000}; do
  .venv/bin/python tools/run.py wdue --config "$config" --run-dir "$out/n$n" data.labeled=$n "$@"
done

#!/usr/bin/env bash
# Issue 3's CPU-scale reproduction: CIFAR-10, ResNet-56 teacher -> ResNet-8 student,
# CE vs KD vs AMAL over 3 seeds, with clean labels, then with 40% symmetric noise on the
# students' labels (the same teacher, trained on the clean labels, is reused).
# Needs the full CIFAR-10 (a data root with cifar10/{train,test}.parquet):
#   METALOSS_DATA=../shared/data bash benchmarks/kd_cifar10_cpu.sh
set -euo pipefail
config=packages/vision/src/metaloss/vision/recipes/configs/kd_cifar10_cpu.yaml
out=${OUT_DIR:-runs/kd_cifar10_cpu}
.venv/bin/python tools/run.py kd --config "$config" --run-dir "$out/clean" "$@"
.venv/bin/python tools/run.py kd --config "$config" --run-dir "$out/noisy40" data.label_noise=0.4 \
  teacher.from_run="$out/clean" "$@"

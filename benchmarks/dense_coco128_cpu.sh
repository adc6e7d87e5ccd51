#!/usr/bin/env bash
# Issue 16's CPU-scale runs: both dense recipes on COCO128 with their default configs, 2 seeds, epoch
# selected on 16 (10) held-out train images. detection: YOLOv3 on a frozen EfficientNet-Lite0 at 320 px,
# 60 epochs, the standard loss beside the DLN with the LSTM teacher (K = 3) and AMAL's per-image part
# weights; segmentation: PSPNet on EfficientNet-Lite0 at 128 px, 30 epochs, standard beside l2t_dln.
# 128 training images cannot reproduce the paper's gains; the runs show that everything learns (the
# metrics on the training images) and what the DLN costs.
# Needs the full COCO128 (a data root with coco128/):
#   METALOSS_DATA=../shared/data bash benchmarks/dense_coco128_cpu.sh [key=value ...]
# RECIPES="detection" runs one; OUT_DIR names the output folder. A killed run resumes when rerun.
set -euo pipefail
out=${OUT_DIR:-results/dense_coco128_cpu}
for recipe in ${RECIPES:-detection segmentation}; do
  .venv/bin/python tools/run.py "$recipe" --run-dir "$out/$recipe" "$@"
done

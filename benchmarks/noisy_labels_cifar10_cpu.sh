#!/usr/bin/env bash
# Issue 13's CPU-scale reproduction (recipes/configs/noisy_labels_cifar10_cpu.yaml), 3 seeds:
#   symmetric:  40% symmetric noise, all six methods
#   instance:   40% instance-dependent noise (Xia et al. 2020): ce, coteaching, l2rw
#   longtail:   imbalance ratio 100, clean labels, M = 100 (10 per class): ce, l2rw, mwnet
#   symmetric_dml, instance_dml: dml on the same data as symmetric / instance (issue 14), in folders
#   of their own (written when a run folder could not yet grow by methods; kept so results stay put)
#   instance_more: gce and mwnet on the instance setting (issue 14 compares dml with all five), own folders
#   dml_ablation: dml at 40% symmetric, seeds 0-2, with lambda = 0 (no KD), with h = 1 (no feedback) and
#   grouped by the teacher's argmax (eq. 8 literally)
#   dml_temperature (not in the default list): dml at 40% symmetric, seed 0, pseudo labels sampled at
#   xi = 0.1 (near the teacher's argmax) instead of 0.7: are cleaner pseudo labels better on validation?
#   l2rw_meta1000 (not in the default list): l2rw at 40% symmetric, seed 0, against meta batches of
#   all 1000 meta examples instead of 100 (benchmarks/l2rw_weight_modes.py: less noisy weights)
# Needs the full CIFAR-10 (a data root with cifar10/{train,test}.parquet):
#   METALOSS_DATA=../shared/data bash benchmarks/noisy_labels_cifar10_cpu.sh [key=value ...]
# SETTINGS="symmetric" runs one; OUT_DIR names the output folder. A killed run resumes when rerun.
set -euo pipefail
config=packages/vision/src/metaloss/vision/recipes/configs/noisy_labels_cifar10_cpu.yaml
out=${OUT_DIR:-results/noisy_labels_cifar10_cpu}
run() { .venv/bin/python tools/run.py noisy_labels --config "$config" --run-dir "$out/$1" "${@:2}"; }
for setting in ${SETTINGS:-symmetric longtail instance symmetric_dml instance_dml instance_more dml_ablation}; do
  case $setting in
    symmetric) run symmetric "$@" ;;
    instance) run instance noise.kind=instance "methods=[ce,coteaching,l2rw]" "$@" ;;
    symmetric_dml) run symmetric_dml "methods=[dml]" "$@" ;;
    instance_dml) run instance_dml noise.kind=instance "methods=[dml]" "$@" ;;
    instance_more) run instance_gce noise.kind=instance "methods=[gce]" "$@"
                   run instance_mwnet noise.kind=instance "methods=[mwnet]" "$@" ;;
    dml_ablation) run symmetric_dml_lam0 "methods=[dml]" dml.lam=0 "$@"
                  run symmetric_dml_no_feedback "methods=[dml]" dml.feedback=constant "$@"
                  run symmetric_dml_group_teacher "methods=[dml]" dml.group_by=teacher "$@" ;;
    dml_temperature) run symmetric_dml_t01 "methods=[dml]" "seeds=[0]" dml.temperature=0.1 "$@" ;;
    l2rw_meta1000) run symmetric_meta1000 "methods=[l2rw]" "seeds=[0]" reweighting.meta_batch=1000 "$@" ;;
    longtail) run longtail noise.rate=0 imbalance_ratio=100 meta.size=100 "methods=[ce,l2rw,mwnet]" "$@" ;;
    *) echo "unknown setting $setting" >&2; exit 2 ;;
  esac
done

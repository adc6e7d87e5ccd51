#!/usr/bin/env bash
# Issue 5 with a longer step 4: the CPU setting at N = 7500 with 20 distillation epochs (not 6), every
# method, then WDUE's weights re-estimated every epoch; prints the per-seed comparison. The every-epoch
# run starts from the first run's teacher and pretrained students (their units are copied: same
# settings and seeds), so the two compare seed by seed.
#   METALOSS_DATA=../shared/data bash benchmarks/wdue_cifar10_cpu_e20.sh
set -euo pipefail
out=${OUT_DIR:-runs/wdue_cifar10_cpu_e20}
long=(student.distill_epochs=20)
OUT_DIR=$out NS=7500 bash benchmarks/wdue_cifar10_cpu.sh "${long[@]}" \
  "methods=[unweighted,weighted,fidelity,composition,oracle_filter]"
src=$out/n7500 dst=${out}_every/n7500
mkdir -p "$dst/results" "$dst/checkpoints"
for unit in teacher-seed0 pretrain-seed0 pretrain-seed1 pretrain-seed2; do
  cp -n "$src/results/$unit.json" "$dst/results/"
  cp -n "$src/checkpoints/$unit.pt" "$dst/checkpoints/"
done
OUT_DIR=${out}_every NS=7500 bash benchmarks/wdue_cifar10_cpu.sh "${long[@]}" "methods=[weighted]" \
  weights.every_epoch=true
.venv/bin/python benchmarks/wdue_table.py "$src" "$dst=every_epoch"

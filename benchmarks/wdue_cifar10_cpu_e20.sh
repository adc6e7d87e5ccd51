#!/usr/bin/env bash
# Issue 5 with a longer step 4: the CPU setting at N = 7500 with 20 distillation epochs (not 6), every
# method, then WDUE's weights re-estimated every epoch; prints the per-seed comparison. The every-epoch
# run starts from the first run's teacher and pretrained students (their units are copied: same
# settings and seeds), so the two compare seed by seed. Two more student seeds (3, 4) of unweighted,
# weighted and the oracle filter, with the same teacher, join the comparison.
#   METALOSS_DATA=../shared/data bash benchmarks/wdue_cifar10_cpu_e20.sh
set -euo pipefail
out=${OUT_DIR:-runs/wdue_cifar10_cpu_e20}
long=(student.distill_epochs=20)
OUT_DIR=$out NS=7500 bash benchmarks/wdue_cifar10_cpu.sh "${long[@]}" \
  "methods=[unweighted,weighted,fidelity,composition,oracle_filter]"
src=$out/n7500 dst=${out}_every/n7500 more=${out}_more/n7500
share() {  # share() DEST UNIT...: give DEST the first run's finished units
  local dest=$1; shift
  mkdir -p "$dest/results" "$dest/checkpoints"
  for unit in "$@"; do
    cp -n "$src/results/$unit.json" "$dest/results/"
    cp -n "$src/checkpoints/$unit.pt" "$dest/checkpoints/"
  done
}
share "$dst" teacher-seed0 pretrain-seed0 pretrain-seed1 pretrain-seed2
OUT_DIR=${out}_every NS=7500 bash benchmarks/wdue_cifar10_cpu.sh "${long[@]}" "methods=[weighted]" \
  weights.every_epoch=true
share "$more" teacher-seed0
OUT_DIR=${out}_more NS=7500 bash benchmarks/wdue_cifar10_cpu.sh "${long[@]}" "seeds=[3,4]" \
  "methods=[unweighted,weighted,oracle_filter]"
.venv/bin/python benchmarks/wdue_table.py "$src" "$more" "$dst=every_epoch"

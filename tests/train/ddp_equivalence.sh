#!/usr/bin/env bash
# ddp_equivalence.sh TRAIN COMPARE MPIEXEC MPI: data-parallel training on P ranks with
# global batch B gives the parameters of one rank with batch B.
#   1. LeNet-300-100 dense, 100 steps at batch 60: 1 rank against 2 and 3 ranks.
#   2. SNIP at 90%: sparse kernels on 1 and 2 ranks; masked dense on 2 ranks (the same
#      kept weights, trained as the reference implementations do).
#   3. 60 steps with a checkpoint every 30, then a run resumed from the step-30
#      checkpoint for the remaining 30: the same parameters as the uninterrupted run.
#   4. A global batch that the ranks cannot share evenly is a clear error.
set -euo pipefail
TRAIN=$1 CMP=$2 MPIEXEC=$3 MPI=$4
W=$(mktemp -d)
trap 'rm -rf "$W"' EXIT
if [ "$MPI" = openmpi ]; then
  L=("$MPIEXEC" --allow-run-as-root --oversubscribe --bind-to none --mca mpi_yield_when_idle 1 --mca btl self,vader,tcp)
else
  L=("$MPIEXEC")
fi
COMMON=(--steps 100 --batch 60 --lr 0.05 --log-every 1000 --eval-every 100000)
run() {  # np out args...
  local np=$1 out=$2
  shift 2
  "${L[@]}" -np "$np" "$TRAIN" "${COMMON[@]}" --save "$W/$out" "$@" > "$W/$out.log" 2>&1 || { cat "$W/$out.log"; exit 1; }
}
run 1 d1
run 2 d2
run 3 d3
"$CMP" lenet300 "$W/d2" "$W/d1" 1e-4 || { echo "FAIL: 2 ranks differ from 1"; exit 1; }
"$CMP" lenet300 "$W/d3" "$W/d1" 1e-4 || { echo "FAIL: 3 ranks differ from 1"; exit 1; }
run 1 s1 --sparsity 0.9
run 2 s2 --sparsity 0.9
"$CMP" lenet300 "$W/s2" "$W/s1" 1e-4 || { echo "FAIL: sparse, 2 ranks differ from 1"; exit 1; }
run 2 m2 --sparsity 0.9 --kernels masked
run 1 m1 --sparsity 0.9 --kernels masked
"$CMP" lenet300 "$W/m2" "$W/m1" 1e-4 || { echo "FAIL: masked, 2 ranks differ from 1"; exit 1; }

COMMON=(--batch 60 --lr 0.05 --log-every 1000 --eval-every 100000 --sparsity 0.9)
run 2 full --steps 60
run 2 part --steps 30 --checkpoint "$W/ck" --checkpoint-every 30
run 2 resumed --steps 60 --checkpoint "$W/ck" --resume
"$CMP" lenet300 "$W/resumed" "$W/full" 1e-6 || { echo "FAIL: the resumed run differs"; exit 1; }

if "${L[@]}" -np 2 "$TRAIN" --steps 1 --batch 61 > "$W/odd.log" 2>&1; then
  echo "FAIL: batch 61 on 2 ranks was accepted"; exit 1
fi
grep -q -- "--batch 61 is not a multiple of the 2 ranks" "$W/odd.log" || { cat "$W/odd.log"; exit 1; }
echo "ddp_equivalence: ok"

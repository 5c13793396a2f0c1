#!/usr/bin/env bash
# A rules line naming one of Open MPI's own algorithms (mpi:N) makes Open MPI run it under
# `tandem run`: observed in the traffic Open MPI's own monitoring counts (pml monitoring,
# collective-internal messages per peer), with negative controls.
#   rules_mpi_alg_check.sh TANDEM BCAST_LOOP
# bcast_loop (8 broadcasts of 1 MiB from rank 0 on 4 ranks) under rules that name
# basic_linear (1): rank 0 sends the whole payload to each of ranks 1, 2, 3. Under `mpi`
# (Open MPI's default), under mpi:1 for other sizes or other rank counts only, and under
# mpi:1 when the run sets coll_tuned's dynamic rules itself (said on standard error), Open
# MPI's fixed rules run (a chain or tree for 1 MiB on 4 ranks): rank 0 sends (almost)
# nothing to rank 3.
set -euo pipefail
T=$1
PROG=$2
W=$(mktemp -d)
trap 'rm -rf "$W"' EXIT
BYTES=1048576
ITERS=8
payload=$((BYTES * ITERS))

sent_to() { awk -v p="$1" '$1 == "I" && $2 == 0 && $3 == p { print $4 }' "$W/mon.0.prof"; }
run() {  # rules-text [env...]
  rm -f "$W"/mon.*.prof
  printf 'tandem-coll-rules 1\n%b' "$1" > "$W/t.rules"
  shift
  env TANDEM_COLL_RULES="$W/t.rules" TMPDIR="$W" "$@" "$T" run -- mpirun.openmpi --allow-run-as-root --oversubscribe \
      --bind-to none --mca mpi_yield_when_idle 1 --mca btl self,vader -np 4 --mca pml_monitoring_enable 2 \
      --mca pml_monitoring_enable_output 3 --mca pml_monitoring_filename "$W/mon" "$PROG" $BYTES $ITERS \
      > "$W/out" 2> "$W/err" || { cat "$W/out" "$W/err"; exit 1; }
}
linear() {  # label
  for p in 1 2 3; do
    b=$(sent_to $p); b=${b:-0}
    echo "$1: rank 0 -> $p: $b bytes"
    [ "$b" -ge "$payload" ] || { echo "FAIL: $1: basic_linear sends the whole payload to rank $p"; cat "$W/err"; exit 1; }
  done
}
not_linear() {  # label
  b=$(sent_to 3); b=${b:-0}
  echo "$1: rank 0 -> 3: $b bytes"
  [ "$b" -lt $((payload / 2)) ] || { echo "FAIL: $1: Open MPI ran basic_linear"; cat "$W/err"; exit 1; }
}

run 'bcast * * mpi:1\n'
linear "mpi:1"
# The file tandem made for Open MPI is gone once MPI_Init is done.
if ls "$W"/tandem-ompi-rules.* > /dev/null 2>&1; then echo "FAIL: the dynamic rules file was left behind"; exit 1; fi
run 'bcast 4 0-1M mpi:1:64K\nbcast * * mpi\n'
linear "mpi:1:64K up to 1 MiB"

run 'bcast * * mpi\n'
not_linear "mpi (the default)"
run 'bcast * 0-1023K mpi:1\nbcast 4 1M- mpi\n'
not_linear "mpi:1 below 1 MiB only"
run 'bcast 5- * mpi:1\n'
not_linear "mpi:1 on 5 ranks and more only"
run 'bcast * * mpi:1\n' OMPI_MCA_coll_tuned_use_dynamic_rules=0
not_linear "mpi:1 with the run's own coll_tuned_use_dynamic_rules=0"
grep -q "are not applied: this run sets coll_tuned_use_dynamic_rules itself" "$W/err" \
    || { echo "FAIL: not said that the rules' mpi:N lines are not applied"; cat "$W/err"; exit 1; }

# Bad input: Open MPI's algorithms are numbers.
printf 'tandem-coll-rules 1\nbcast * * mpi:binomial\n' > "$W/bad.rules"
if TANDEM_COLL_RULES="$W/bad.rules" "$T" run -- mpirun.openmpi --allow-run-as-root --oversubscribe -np 2 "$PROG" 8 1 \
    > "$W/out" 2> "$W/err"; then
  echo "FAIL: a rules file naming mpi:binomial ran under Open MPI"; exit 1
fi
grep -q "bad.rules:2: \`mpi:binomial\`: Open MPI's algorithms are numbers" "$W/err" \
    || { echo "FAIL: the error does not name the line"; cat "$W/err"; exit 1; }
echo "rules_mpi_alg_check: ok"

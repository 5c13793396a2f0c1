#!/usr/bin/env bash
# Open MPI loads the rules file `tandem tune --ompi-export` writes and runs the algorithm
# it names: observed in the traffic Open MPI's own monitoring counts (pml monitoring,
# collective-internal messages per peer), with two negative controls (no file; the same
# file with an error, which Open MPI silently discards).
#   ompi_export_check.sh TANDEM BCAST_LOOP
# 1. A real tuning of bcast (1 MiB, 4 ranks, shared memory) with Open MPI's algorithms
#    forced one by one; its state is then rewritten so that Open MPI's basic_linear (1)
#    is the fastest, and replayed: the export names algorithm 1 (deterministically).
# 2. bcast_loop under that file: rank 0 sends the whole payload to each of ranks 1, 2, 3.
# 3. Without the file, and with the file's first message size made 1 (an error: every
#    communicator size's first rule must be 0), Open MPI's fixed rules run (a chain or
#    tree for 1 MiB on 4 ranks): rank 0 sends (almost) nothing to rank 3.
set -euo pipefail
T=$1
PROG=$2
W=$(mktemp -d)
trap 'rm -rf "$W"' EXIT
LAUNCH=(mpirun.openmpi --allow-run-as-root --oversubscribe --bind-to none --mca mpi_yield_when_idle 1
        --mca btl self,vader -np 4)
BYTES=1048576
ITERS=8

"$T" tune --where shm --np 4 -c bcast --sizes $BYTES --method exhaustive --budget 0.02 --segsizes 0 --fanouts 2 \
    -o "$W/t.rules" --ompi-export "$W/measured.ompi" > "$W/tune.log" 2>&1 || { cat "$W/tune.log"; exit 1; }
grep -q '"mpi:1"' "$W/t.rules.state.json" || { echo "no measurement of Open MPI's algorithm 1"; exit 1; }
sed -E 's/("[^"]+"): [-0-9.e+]+/\1: 1/; s/"mpi:1": 1/"mpi:1": 0.001/' "$W/t.rules.state.json" > "$W/linear.state.json"
"$T" tune --replay "$W/linear.state.json" --np 4 -c bcast --sizes $BYTES --method exhaustive --segsizes 0 --confirm 0 \
    --fanouts 2 -o "$W/r.rules" --ompi-export "$W/linear.ompi" > "$W/replay.log" 2>&1 || { cat "$W/replay.log"; exit 1; }
echo "exported:"; cat "$W/linear.ompi"
grep -qx '0 1 0 0' "$W/linear.ompi" || { echo "the export does not name algorithm 1 from size 0"; exit 1; }

# Bytes rank 0 sent to rank $1 inside collectives (pml monitoring's "I" lines), after a run.
sent_to() { awk -v p="$1" '$1 == "I" && $2 == 0 && $3 == p { print $4 }' "$W/mon.0.prof"; }
run() {
  rm -f "$W"/mon.*.prof
  "${LAUNCH[@]}" --mca pml_monitoring_enable 2 --mca pml_monitoring_enable_output 3 \
      --mca pml_monitoring_filename "$W/mon" "$@" "$PROG" $BYTES $ITERS
}
payload=$((BYTES * ITERS))

run --mca coll_tuned_use_dynamic_rules 1 --mca coll_tuned_dynamic_rules_filename "$W/linear.ompi"
for p in 1 2 3; do
  b=$(sent_to $p); b=${b:-0}
  echo "with the file: rank 0 -> $p: $b bytes"
  [ "$b" -ge "$payload" ] || { echo "FAIL: basic_linear sends the whole payload to rank $p"; exit 1; }
done

run
b=$(sent_to 3); b=${b:-0}
echo "without a file: rank 0 -> 3: $b bytes"
[ "$b" -lt $((payload / 2)) ] || { echo "FAIL: the negative control sent the payload to rank 3 (is the default linear?)"; exit 1; }

sed '0,/^0 1 0 0$/s//1 1 0 0/' "$W/linear.ompi" > "$W/broken.ompi"
run --mca coll_tuned_use_dynamic_rules 1 --mca coll_tuned_dynamic_rules_filename "$W/broken.ompi"
b=$(sent_to 3); b=${b:-0}
echo "with the broken file: rank 0 -> 3: $b bytes"
[ "$b" -lt $((payload / 2)) ] || { echo "FAIL: Open MPI ran the broken file's algorithm"; exit 1; }
echo "ompi_export_check: ok"

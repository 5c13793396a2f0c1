#!/usr/bin/env bash
# MPICH loads the selection files `tandem tune --mpich-export` writes and runs the
# algorithm they name, observed in the traffic between the virtual cluster's two hosts
# (4 ranks, 2 per host; MPICH places ranks 0,2 on host 0 and 1,3 on host 1): a broadcast
# of 1 MiB from rank 0
#   - binomial (0->2, 0->1, 2->3) sends nothing from host 1 to host 0,
#   - scatter_ring_allgather (binomial scatter, then a ring 0->1->2->3->0) sends 3/4 of
#     the payload from host 1 to host 0 twice (1->2 and 3->0).
# 1. A real tuning of bcast (1 MiB, 4 ranks, shared memory) with MPICH's algorithms
#    forced one by one; its state is rewritten so that one algorithm is the fastest and
#    replayed, once per algorithm: the exports name it (deterministically).
# 2. bcast_loop on the virtual cluster under each export: host 0 receives (almost)
#    nothing from host 1 under binomial, at least the ring's share under
#    scatter_ring_allgather; negative controls: no files, and the MPIR file without the
#    ch4 file (MPICH's ch4 layer then takes its node-aware path and never reads it).
#   mpich_export_check.sh TANDEM BCAST_LOOP_MPICH [PRELOAD]
# PRELOAD: a library preloaded into the ranks on the virtual cluster (the bounded-flush
# workaround for MPICH 4.0 + UCX over TCP in MPI_Finalize, docs/vcluster.md).
set -euo pipefail
T=$1
PROG=$2
PRE=${3:-}
"$T" vcluster status -q || { echo "SKIP: no vcluster is up"; exit 77; }
W=$(mktemp -d)
trap 'rm -rf "$W"' EXIT
BYTES=1048576
ITERS=8
payload=$((BYTES * ITERS))

"$T" tune --where shm --mpi mpich --np 4 -c bcast --sizes $BYTES --method exhaustive --budget 0.02 --segsizes 0 \
    --fanouts 2 -o "$W/t.rules" --mpich-export "$W/measured.json" > "$W/tune.log" 2>&1 || { cat "$W/tune.log"; exit 1; }
for alg in binomial scatter_ring_allgather; do
  grep -q "\"mpi:$alg\"" "$W/t.rules.state.json" || { echo "no measurement of MPICH's $alg"; cat "$W/tune.log"; exit 1; }
  sed -E "s/(\"[^\"]+\"): [-0-9.e+]+/\\1: 1/; s/\"mpi:$alg\": 1/\"mpi:$alg\": 0.001/" "$W/t.rules.state.json" > "$W/$alg.state.json"
  "$T" tune --replay "$W/$alg.state.json" --mpi mpich --np 4 -c bcast --sizes $BYTES --method exhaustive --segsizes 0 --confirm 0 \
      --fanouts 2 -o "$W/r.rules" --mpich-export "$W/$alg.json" > "$W/replay.log" 2>&1 || { cat "$W/replay.log"; exit 1; }
  grep -q "\"comm_size<=4\":{\"avg_msg_size=any\":{\"algorithm=MPIR_Bcast_intra_$alg\":{}}}" "$W/$alg.json" ||
    { echo "the export does not name MPIR_Bcast_intra_$alg for 4 ranks"; head -c 2000 "$W/$alg.json"; exit 1; }
  grep -q '"collective=alltoall"' "$W/$alg.json" || { echo "the export is not complete"; exit 1; }
  grep -q 'MPIDI_Bcast_intra_composition_gamma' "$W/$alg.json.ch4.json" || { echo "no flat ch4 path for bcast"; exit 1; }
done

rx() { ip netns exec tandem-h0 cat /sys/class/net/vceth0/statistics/rx_bytes; }
# Bytes host 0 received during one bcast_loop run (with the given launcher arguments).
run() {
  local before after rc
  for attempt in 1 2 3; do
    before=$(rx)
    rc=0
    LD_PRELOAD=$PRE "$T" vcluster mpirun --mpi mpich --timeout 60 "$@" -np 4 "$PROG" $BYTES $ITERS > "$W/run.log" 2>&1 || rc=$?
    after=$(rx)
    [ $rc -ne 124 ] && break
    echo "attempt $attempt timed out (MPICH 4.0 + UCX over TCP can hang in MPI_Finalize)" >&2
  done
  grep -q "correct" "$W/run.log" || { cat "$W/run.log" >&2; echo "FAIL: bcast_loop did not finish correctly" >&2; exit 1; }
  echo $((after - before))
}
files() { echo -genv MPIR_CVAR_COLL_SELECTION_TUNING_JSON_FILE "$W/$1.json" -genv MPIR_CVAR_CH4_COLL_SELECTION_TUNING_JSON_FILE "$W/$1.json.ch4.json"; }

b=$(run $(files binomial))
echo "binomial export: host 0 received $b bytes"
[ "$b" -lt $((payload / 4)) ] || { echo "FAIL: binomial sends nothing from host 1 to host 0"; exit 1; }
r=$(run $(files scatter_ring_allgather))
echo "scatter_ring_allgather export: host 0 received $r bytes"
[ "$r" -ge "$payload" ] || { echo "FAIL: the ring sends 1.5x the payload from host 1 to host 0"; exit 1; }
# Negative controls: without the files MPICH makes its own choice (on these nodes its ch4
# layer's node-aware composition); with the MPIR file alone ch4 still takes that path, so
# the ring named in the file never runs: the ch4 file is what sends it to the flat path.
d=$(run)
echo "without the files (MPICH's own choice): host 0 received $d bytes"
[ "$d" -lt $((payload / 4)) ] || { echo "FAIL: expected MPICH's node-aware broadcast without the files"; exit 1; }
m=$(run -genv MPIR_CVAR_COLL_SELECTION_TUNING_JSON_FILE "$W/scatter_ring_allgather.json")
echo "the ring's MPIR file without the ch4 file: host 0 received $m bytes"
[ "$m" -lt $((payload / 4)) ] || { echo "FAIL: the ring ran without ch4's flat path (is the ch4 file still needed?)"; exit 1; }
echo "mpich_export_check: ok"

#!/usr/bin/env bash
# `tandem tune --mpi-algorithms` end to end: Open MPI's own algorithms forced one by one are
# measured as candidates of tandem's rules (under `tandem run`, labels mpi:N@run), one that
# fails or hangs is "not a candidate there" instead of ending the tuning, and a rules line
# mpi:N comes out where Open MPI's algorithm N is the fastest.
#   tune_mpi_alg_check.sh TANDEM
# 1. A tuning of bcast (1 MiB, 4 ranks, shared memory) with an mpirun.openmpi first on PATH
#    that runs the real one, except for a forced basic_linear (1), which fails (exit 3), and
#    a forced chain (2), which never returns (killed at --timeout): both are said on standard
#    error, left out of the state (null), and the tuning writes its rules. The chain is also
#    tried at the grid's fan-out 2 (mpi:2:0:2, forced with its chain_fanout; exit 4 here).
# 2. The state rewritten so that Open MPI's binomial (6) under `tandem run` is the fastest
#    and replayed: the rules name mpi:6 for 4 ranks.
set -euo pipefail
T=$1
W=$(mktemp -d)
trap 'rm -rf "$W"' EXIT
BYTES=1048576
REAL=$(command -v mpirun.openmpi)
mkdir "$W/bin"
cat > "$W/bin/mpirun.openmpi" <<EOF
#!/usr/bin/env bash
case " \$* " in
  *" coll_tuned_bcast_algorithm 2 "*" coll_tuned_bcast_algorithm_chain_fanout 2 "*) exit 4 ;;
  *" coll_tuned_bcast_algorithm 1 "*) echo "a forced basic_linear that fails" >&2; exit 3 ;;
  *" coll_tuned_bcast_algorithm 2 "*) exec sleep 120 ;;
esac
exec "$REAL" "\$@"
EOF
chmod +x "$W/bin/mpirun.openmpi"

PATH="$W/bin:$PATH" "$T" tune --where shm --np 4 -c bcast --sizes $BYTES --method exhaustive --budget 0.02 \
    --segsizes 0 --fanouts 2 --mpi-algorithms --timeout 20 -o "$W/t.rules" > "$W/tune.log" 2> "$W/tune.err" ||
  { cat "$W/tune.log" "$W/tune.err"; exit 1; }
cat "$W/tune.err"
grep -q "Open MPI's mpi:1@run at bcast/4/$BYTES failed (exit status 3): not a candidate there" "$W/tune.err" ||
  { echo "FAIL: the failing forced algorithm is not said"; exit 1; }
grep -q "Open MPI's mpi:2@run at bcast/4/$BYTES did not finish in --timeout (exit status 124): not a candidate there" \
    "$W/tune.err" || { echo "FAIL: the hanging forced algorithm is not said"; exit 1; }
grep -q "Open MPI's mpi:2:0:2@run at bcast/4/$BYTES failed (exit status 4): not a candidate there" "$W/tune.err" ||
  { echo "FAIL: the chain at fan-out 2 was not forced with coll_tuned_bcast_algorithm_chain_fanout 2"; exit 1; }
grep -q '"mpi:1@run": null' "$W/t.rules.state.json" || { echo "FAIL: the failed algorithm has a time"; exit 1; }
grep -q '"mpi:2@run": null' "$W/t.rules.state.json" || { echo "FAIL: the hung algorithm has a time"; exit 1; }
grep -Eq '"mpi:6@run": [0-9]' "$W/t.rules.state.json" || { echo "FAIL: no measurement of mpi:6 under tandem run"; exit 1; }
grep -q '^bcast ' "$W/t.rules" || { echo "FAIL: the tuning wrote no bcast rule"; cat "$W/t.rules"; exit 1; }

sed -E 's/("[^"]+"): [-0-9.e+]+/\1: 1/; s/"mpi:6@run": 1/"mpi:6@run": 0.001/' "$W/t.rules.state.json" > "$W/b.state.json"
"$T" tune --replay "$W/b.state.json" --np 4 -c bcast --sizes $BYTES --method exhaustive --segsizes 0 --fanouts 2 --confirm 0 \
    --mpi-algorithms -o "$W/b.rules" > "$W/replay.log" 2>&1 || { cat "$W/replay.log"; exit 1; }
echo "rules:"; cat "$W/b.rules"
grep -Eq '^bcast +4 +.* +mpi:6 *$' "$W/b.rules" || { echo "FAIL: the rules do not name Open MPI's binomial (mpi:6)"; exit 1; }
echo "tune_mpi_alg_check: ok"

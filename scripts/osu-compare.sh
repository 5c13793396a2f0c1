#!/bin/bash
# osu-compare.sh OSU_DIR RULES [REPS] [FORCED_REPS]: times Open MPI's default, tandem with a
# rules file under `tandem run`, and each of Open MPI's own algorithms forced, with the OSU
# micro-benchmarks (osu_allreduce, osu_bcast from OSU_DIR, built with mpicc.openmpi) as an
# independent timer, on a 4-host virtual cluster at 1 Gbit/s, in alternating runs. Writes
# out.LABEL.COLL.REP files (OSU's own output) in the current directory; docs/tuning.md
# "The tuned rules against Open MPI" reports such a run. TANDEM: the tandem binary (default:
# tandem on PATH).
set -u
O=${1:?usage: osu-compare.sh OSU_DIR RULES [REPS] [FORCED_REPS]}
R=${2:?usage: osu-compare.sh OSU_DIR RULES [REPS] [FORCED_REPS]}
REPS=${3:-5}
FREPS=${4:-2}
T=${TANDEM:-tandem}
for b in allreduce bcast; do [ -x "$O/osu_$b" ] || { echo "osu-compare: no $O/osu_$b" >&2; exit 2; }; done
[ -r "$R" ] || { echo "osu-compare: cannot read rules file $R" >&2; exit 2; }
"$T" vcluster up --force --hosts 4 --rate 1gbit > vcluster-up.log 2>&1 || { cat vcluster-up.log >&2; exit 1; }
run() {  # label coll command...
  local label=$1 coll=$2
  shift 2
  timeout 600 "$@" "$O/osu_$coll" -m 4:16777216 -i 20 -x 3 > "out.$label.$coll.$rep" 2>&1
}
for rep in $(seq 1 "$REPS"); do
  for coll in allreduce bcast; do
    run default $coll "$T" vcluster mpirun -np 4
    run tandem $coll env TANDEM_COLL_RULES="$R" "$T" run -- "$T" vcluster mpirun -np 4
  done
done
for rep in $(seq 1 "$FREPS"); do
  for coll in allreduce bcast; do
    n=$(ompi_info --parsable --param coll tuned --level 9 | grep -c "coll_tuned_${coll}_algorithm:enumerator:value:")
    for a in $(seq 1 $((n - 1))); do
      run "forced$a" $coll "$T" vcluster mpirun -np 4 --mca coll_tuned_use_dynamic_rules 1 \
          --mca "coll_tuned_${coll}_algorithm" "$a"
    done
  done
done
echo "osu-compare: done"

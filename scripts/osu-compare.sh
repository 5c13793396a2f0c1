#!/bin/bash
# osu-compare.sh OSU_DIR RULES [REPS] [FORCED_REPS]: times Open MPI's default, tandem with a
# rules file under `tandem run`, optionally Open MPI with an exported coll_tuned rules file
# alone (OMPI_EXPORT=FILE), and each of Open MPI's own algorithms forced, with the OSU
# micro-benchmarks (osu_<coll> from OSU_DIR, built with mpicc.openmpi) as an independent
# timer, on a 4-host virtual cluster at 1 Gbit/s, in alternating runs; then summarises.
#   COLLS    collectives (default "allreduce bcast"; OSU's names: osu_$coll)
#   SIZES    OSU's -m, one or more ranges (default "4:8192 16384:16777216"), each run with
#   ITERS    the matching OSU -i (default "1000 20"; warm-up -x a tenth, at least 3): small
#            sizes take many iterations, so that a run's average is not its noise
#   OMPI_EXPORT  an Open MPI dynamic rules file (tandem tune --ompi-export): a side of its own
#   TANDEM   the tandem binary (default: tandem on PATH)
#   SIDE_ENV  settings for the tandem side only, e.g. "TANDEM_PROGRESS=poll"
#   RUN_TIMEOUT  seconds one OSU run may take (default 300: some forced algorithms hang)
# Writes out.LABEL.COLL.REP files (OSU's own output) in the current directory and
# summary.txt: per collective and size the median over the runs of OSU's average latency
# per side, the best forced algorithm's, the ratios, and the counts the targets of
# docs/tuning.md "The tuned rules against Open MPI" name. SUMMARY_ONLY=1 only summarises.
set -u
O=${1:?usage: osu-compare.sh OSU_DIR RULES [REPS] [FORCED_REPS]}
R=${2:?usage: osu-compare.sh OSU_DIR RULES [REPS] [FORCED_REPS]}
REPS=${3:-5}
FREPS=${4:-2}
T=${TANDEM:-tandem}
COLLS=${COLLS:-allreduce bcast}
SIZES=${SIZES:-4:8192 16384:16777216}
ITERS=${ITERS:-1000 20}
read -r -a SIZE_LIST <<< "$SIZES"
read -r -a ITER_LIST <<< "$ITERS"
[ "${#SIZE_LIST[@]}" -eq "${#ITER_LIST[@]}" ] || { echo "osu-compare: SIZES and ITERS differ in length" >&2; exit 2; }
X=${OMPI_EXPORT:-}
if [ -z "${SUMMARY_ONLY:-}" ]; then
  for b in $COLLS; do [ -x "$O/osu_$b" ] || { echo "osu-compare: no $O/osu_$b" >&2; exit 2; }; done
  [ -r "$R" ] || { echo "osu-compare: cannot read rules file $R" >&2; exit 2; }
  [ -z "$X" ] || [ -r "$X" ] || { echo "osu-compare: cannot read OMPI_EXPORT file $X" >&2; exit 2; }
  "$T" vcluster up --force --hosts 4 --rate 1gbit > vcluster-up.log 2>&1 || { cat vcluster-up.log >&2; exit 1; }
  run() {  # label coll command...
    local label=$1 coll=$2
    shift 2
    : > "out.$label.$coll.$rep"
    for i in "${!SIZE_LIST[@]}"; do
      local it=${ITER_LIST[$i]} x=$((ITER_LIST[i] / 10 > 3 ? ITER_LIST[i] / 10 : 3))
      timeout "${RUN_TIMEOUT:-300}" "$@" "$O/osu_$coll" -m "${SIZE_LIST[$i]}" -i "$it" -x "$x" >> "out.$label.$coll.$rep" 2>&1
    done
  }
  for rep in $(seq 1 "$REPS"); do
    for coll in $COLLS; do
      run default $coll "$T" vcluster mpirun -np 4
      # shellcheck disable=SC2086 # (SIDE_ENV: words VAR=VALUE)
      run tandem $coll env TANDEM_COLL_RULES="$R" ${SIDE_ENV:-} "$T" run -- "$T" vcluster mpirun -np 4
      [ -z "$X" ] || run export $coll "$T" vcluster mpirun -np 4 --mca coll_tuned_use_dynamic_rules 1 \
          --mca coll_tuned_dynamic_rules_filename "$X"
    done
  done
  for rep in $(seq 1 "$FREPS"); do
    for coll in $COLLS; do
      n=$(ompi_info --parsable --param coll tuned --level 9 | grep -c "coll_tuned_${coll}_algorithm:enumerator:value:")
      for a in $(seq 1 $((n - 1))); do
        run "forced$a" $coll "$T" vcluster mpirun -np 4 --mca coll_tuned_use_dynamic_rules 1 \
            --mca "coll_tuned_${coll}_algorithm" "$a"
      done
    done
  done
fi

# Summary: "coll size label median" per side, then the table and the counts.
for f in out.*.*.*; do
  [ -e "$f" ] || continue
  IFS=. read -r _ label coll _ <<< "$f"
  awk -v c="$coll" -v l="$label" '$1 ~ /^[0-9]+$/ && $2 ~ /^[0-9.]+$/ { print c, $1, l, $2 }' "$f"
done | sort -k1,1 -k2,2n -k3,3 -k4,4g | awk '
  function flush() { if (n) { m = n % 2 ? v[(n + 1) / 2] : (v[n / 2] + v[n / 2 + 1]) / 2; print key, m } n = 0 }
  { k = $1 " " $2 " " $3; if (k != key) { flush(); key = k } v[++n] = $4 }
  END { flush() }' > medians.txt
awk -v have_export="$([ -n "$X" ] && echo 1 || echo 0)" '
  { k = $1 " " $2; keys[k] = 1; if ($3 ~ /^forced/) { if (!(k in bf) || $4 < bf[k]) { bf[k] = $4; bl[k] = substr($3, 7) } }
    else t[k, $3] = $4 }
  END {
    printf "%-10s %9s %10s %10s", "coll", "bytes", "default", "tandem"
    if (have_export) printf " %10s", "export"
    printf " %14s %8s %8s", "best forced", "t/def", "t/forced"
    if (have_export) printf " %8s", "x/def"
    printf "\n"
    n = 0
    for (k in keys) order[++n] = k
    # (insertion sort by collective, then size)
    for (i = 2; i <= n; i++) { x = order[i]; split(x, a, " "); j = i - 1
      while (j > 0) { split(order[j], b, " "); if (b[1] < a[1] || (b[1] == a[1] && b[2] + 0 <= a[2] + 0)) break
        order[j + 1] = order[j]; j-- }
      order[j + 1] = x }
    for (i = 1; i <= n; i++) {
      k = order[i]; split(k, a, " "); d = t[k, "default"]; tt = t[k, "tandem"]; x = t[k, "export"]
      if (d == "" || tt == "") continue
      pts++
      r = tt / d; if (r > 1.02) slow++; if (d / tt >= 1.3) fast++
      f = (k in bf) ? bf[k] : ""
      if (f != "") { fp++; if (tt <= f) geforced++; if (tt <= 1.02 * f) geforced2++ }
      printf "%-10s %9s %10.2f %10.2f", a[1], a[2], d, tt
      if (have_export) printf " %10s", x == "" ? "-" : sprintf("%.2f", x)
      printf " %9s (%2s) %8.2f %8s", f == "" ? "-" : sprintf("%.2f", f), f == "" ? "" : bl[k], r, f == "" ? "-" : sprintf("%.2f", tt / f)
      if (have_export) { printf " %8s", x == "" ? "-" : sprintf("%.2f", x / d); if (x != "") { xp++; if (x / d > 1.02) xslow++; if (d / x >= 1.1) xfast++ } }
      printf "\n"
    }
    printf "\npoints: %d (median over the runs of OSU'\''s average latency, us)\n", pts
    printf "tandem more than 1.02x slower than the default: %d; 1.3x faster or more: %d (%.0f%%)\n", slow, fast, pts ? 100 * fast / pts : 0
    printf "tandem at least as fast as the best forced Open MPI algorithm: %d of %d (within 1.02x: %d)\n", geforced, fp, geforced2
    if (have_export) printf "export more than 1.02x slower than the default: %d of %d; 1.1x faster or more: %d\n", xslow, xp, xfast
  }' medians.txt | tee summary.txt
echo "osu-compare: done"

#!/bin/sh
# run_coll_check.sh TANDEM K OVERLAP LAUNCHER... : runs coll_check (the last launcher
# arguments) under `tandem run --stats` with the K-th algorithm (modulo each list's
# length) of every collective forced through TANDEM_COLL_<COLL>, with TANDEM_COLL_OVERLAP
# set to OVERLAP; passes when the program reports no failure and every rank's tandem
# statistics show intercepted calls (and deferred ones with OVERLAP=1). With
# COLL_CHECK_HIER=1 the k-th hierarchical composition (hier/...) is taken instead for the
# collectives that have them. COLL_CHECK_EXPECT: an extended regular expression the output
# must also match. A launcher that exits 77 (no virtual cluster here) skips the test.
set -u
tandem=$1 k=$2 overlap=$3
shift 3
forced=""
algos=$("$tandem" info --algorithms) || { echo "run_coll_check: tandem info --algorithms failed"; exit 1; }
# Each line: "coll: a, b, c"
while IFS= read -r line; do
  coll=${line%%:*}
  list=$(printf '%s\n' "${line#*: }" | tr -d ' ' | tr ',' ' ')
  if [ "${COLL_CHECK_HIER:-0}" = 1 ]; then
    hier=$(printf '%s\n' $list | grep '^hier/' | tr '\n' ' ')
    [ -n "$hier" ] && list=$hier
  fi
  set -f
  n=0
  for a in $list; do n=$((n + 1)); done
  i=$((k % n))
  j=0
  for a in $list; do
    if [ $j -eq $i ]; then pick=$a; fi
    j=$((j + 1))
  done
  set +f
  var=TANDEM_COLL_$(printf '%s' "$coll" | tr 'a-z' 'A-Z')
  export "$var=$pick"
  forced="$forced $var=$pick"
done <<EOF2
$algos
EOF2
export TANDEM_LOCAL=on TANDEM_COLL_OVERLAP=$overlap
echo "run_coll_check: TANDEM_COLL_OVERLAP=$overlap$forced"
out=$("$tandem" run --stats -- "$@" 2>&1)
rc=$?
printf '%s\n' "$out"
[ $rc -eq 77 ] && { echo "run_coll_check: SKIP"; exit 77; }
[ $rc -eq 0 ] || { echo "run_coll_check: FAIL: exit status $rc"; exit 1; }
printf '%s\n' "$out" | grep -q "coll_check: .* 0 failures" || { echo "run_coll_check: FAIL: no clean summary"; exit 1; }
lines=$(printf '%s\n' "$out" | grep -c '^tandem\[rank')
[ "$lines" -gt 0 ] || { echo "run_coll_check: FAIL: no tandem statistics"; exit 1; }
if printf '%s\n' "$out" | grep '^tandem\[rank' | grep -q 'intercepted=0 '; then
  echo "run_coll_check: FAIL: a rank intercepted nothing"; exit 1
fi
if [ "$overlap" = 1 ] && printf '%s\n' "$out" | grep '^tandem\[rank' | grep -q 'deferred=0 '; then
  echo "run_coll_check: FAIL: overlap on, but a rank deferred no collective"; exit 1
fi
if [ -n "${COLL_CHECK_EXPECT:-}" ] && ! printf '%s\n' "$out" | grep -Eq "$COLL_CHECK_EXPECT"; then
  echo "run_coll_check: FAIL: no line matches $COLL_CHECK_EXPECT"; exit 1
fi
echo "run_coll_check: PASS"

#!/usr/bin/env bash
# run_stress.sh: run one stress configuration (CTest driver) and judge it.
#
# usage: run_stress.sh --ranks N [--cases N] [--tandem [--deferral-optional]] [--timeout S]
#                      [--finalize-grace S] [--expect-ompi-btl tcp|vader] [--expect-ucx tcp|shm]
#                      -- COMMAND...
#
# COMMAND is the whole launcher command line, e.g.
#   mpirun.openmpi ... -np 3 build/bin/stress_openmpi -s 1
# or, for the tandem variants (one case each),
#   build/bin/tandem run --stats --mpi openmpi -- mpirun.openmpi ... -np 3 build/bin/stress_openmpi -s 1 wildcard
#
# The run passes when
#   * the command exits 0 within --timeout seconds (the whole process group is
#     killed on a timeout), and
#   * rank 0 printed "stress: all N case(s) passed" (so every case ran and every
#     rank's checks passed; with --cases N, exactly that N), and
#   * with --tandem: every rank 0..N-1 printed exactly one tandem statistics line
#       tandem[rank R]: intercepted=.. deferred=D passthrough=.. bytes_deferred=B access_waits=.. wait_us=..
#     on standard error with D > 0 and B > 0 (the calls were really deferred; not
#     required with --deferral-optional, for a case that defers nothing by design), and
#   * with --expect-ompi-btl NAME: Open MPI's BTL selection (OMPI_MCA_btl_base_verbose=10,
#     set here) initialised the NAME component and no other inter-process BTL
#     (tcp: no vader/sm; vader: no tcp), and
#   * with --expect-ucx tcp|shm: every UCX endpoint configuration that UCX logs
#     (UCX_LOG_LEVEL=info, set here; "ep_cfg[..]: tag(...)") carries tagged messages
#     over tcp (and self) only -- or, for shm, over shared-memory transports
#     (sysv/posix/cma/xpmem/knem) and no tcp.
#
# --finalize-grace S works around a known hang of MPICH 4.0 + UCX 1.13 over TCP
# (UCX_TLS=tcp,self) in MPI_Finalize (UCX's TCP transport stops progressing
# endpoints that MPI_Finalize still flushes: openucx/ucx#8738; it hangs about one
# run in five here even for a trivial program).  When rank 0 has already printed
# its final summary (after a global reduction of every rank's error count) and,
# with --tandem, every rank printed its statistics line (tandem prints it in
# MPI_Finalize), the launcher is given S more seconds; if it still runs then, it is
# killed and the run is judged on the output alone, with a WARNING.
#
# Exit status: 0 pass, 1 fail.  Everything the command printed is echoed.
set -u

ranks=
cases=
tandem=0
deferral_optional=0
timeout_s=150
grace=
expect_btl=
expect_ucx=
while [ $# -gt 0 ]; do
  case "$1" in
    --ranks) ranks=$2; shift 2 ;;
    --cases) cases=$2; shift 2 ;;
    --tandem) tandem=1; shift ;;
    --deferral-optional) deferral_optional=1; shift ;;
    --timeout) timeout_s=$2; shift 2 ;;
    --finalize-grace) grace=$2; shift 2 ;;
    --expect-ompi-btl) expect_btl=$2; shift 2 ;;
    --expect-ucx) expect_ucx=$2; shift 2 ;;
    --) shift; break ;;
    *) echo "run_stress: unknown option $1" >&2; exit 2 ;;
  esac
done
if [ -z "$ranks" ] || [ $# -eq 0 ]; then
  echo "usage: run_stress.sh --ranks N [--cases N] [--tandem [--deferral-optional]] [--timeout S] [--finalize-grace S] [--expect-ompi-btl tcp|vader] [--expect-ucx tcp|shm] -- COMMAND..." >&2
  exit 2
fi

[ -n "$expect_btl" ] && export OMPI_MCA_btl_base_verbose=10
[ -n "$expect_ucx" ] && export UCX_LOG_LEVEL=info

work=$(mktemp -d "${TMPDIR:-/tmp}/run_stress.XXXXXX")
trap 'rm -rf "$work"' EXIT
out=$work/stdout
err=$work/stderr

echo "run_stress: $*"
echo "run_stress: env: UCX_TLS=${UCX_TLS-} TANDEM_THRESHOLD=${TANDEM_THRESHOLD-} (ranks $ranks, timeout ${timeout_s}s)"

# Own process group, so a timeout can end the launcher and everything it started.
set -m
"$@" >"$out" 2>"$err" &
pid=$!
set +m

summary_re='^stress: (all [0-9]+ case\(s\) passed|FAILED )'
stats_count() { grep -cE 'tandem\[rank [0-9]+\]: intercepted=' "$err" 2>/dev/null || true; }
finished_output() {
  grep -qE "$summary_re" "$out" "$err" 2>/dev/null || return 1
  if [ "$tandem" = 1 ]; then [ "$(stats_count)" -ge "$ranks" ] || return 1; fi
  return 0
}
kill_group() {
  kill -TERM -- "-$pid" 2>/dev/null
  for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.1; done
  kill -KILL -- "-$pid" 2>/dev/null
}

start=$(date +%s)
timed_out=0
grace_killed=0
done_at=
while kill -0 "$pid" 2>/dev/null; do
  now=$(date +%s)
  if [ $((now - start)) -ge "$timeout_s" ]; then
    timed_out=1
    kill_group
    break
  fi
  if [ -n "$grace" ]; then
    if [ -z "$done_at" ] && finished_output; then done_at=$now; fi
    if [ -n "$done_at" ] && [ $((now - done_at)) -ge "$grace" ]; then
      grace_killed=1
      kill_group
      break
    fi
  fi
  sleep 0.2
done
wait "$pid" 2>/dev/null
rc=$?
elapsed=$(( $(date +%s) - start ))

# Echo everything (UCX/BTL verbose lines are summarised, not echoed).
noise_re='UCX  (INFO|DIAG)|mca: base: components_|select: (initializing btl|init of component)|btl:tcp: |mca: bml:'
grep -vE "$noise_re" "$out"
grep -vE "$noise_re" "$err" >&2

failures=()
fail() { failures+=("$1"); }

if [ "$timed_out" = 1 ]; then
  fail "timed out after ${timeout_s}s (killed)"
elif [ "$grace_killed" = 1 ]; then
  echo "run_stress: WARNING: the launcher was still running ${grace}s after every rank finished its checks;" \
       "killed it (known MPICH/UCX-over-TCP MPI_Finalize hang, openucx/ucx#8738); judging the output only" >&2
elif [ "$rc" -ne 0 ]; then
  fail "the command exited with status $rc"
fi

if grep -qE "^stress: all ${cases:-[0-9]+} case\\(s\\) passed" "$out"; then
  :
elif grep -qE '^stress: all [0-9]+ case\(s\) passed' "$out"; then
  fail "rank 0's summary names another number of cases than $cases: $(grep -E '^stress: all ' "$out")"
elif grep -qE '^stress: FAILED ' "$err"; then
  fail "$(grep -E '^stress: FAILED ' "$err" | head -1)"
else
  fail "rank 0 never printed its summary line (crash, abort or hang; see above)"
fi
if grep -qE 'stress\[rank [0-9]+\] FAIL' "$err"; then
  fail "$(grep -cE 'stress\[rank [0-9]+\] FAIL' "$err") FAIL line(s) from the program, first: $(grep -m1 -E 'stress\[rank [0-9]+\] FAIL' "$err")"
fi

if [ "$tandem" = 1 ]; then
  stats_re='tandem\[rank ([0-9]+)\]: intercepted=([0-9]+) deferred=([0-9]+) passthrough=([0-9]+) bytes_deferred=([0-9]+) access_waits=([0-9]+) wait_us=([0-9]+)'
  if grep -qE "$summary_re" "$out" "$err"; then
    hint="is the preload library loaded and TANDEM_STATS=1?"
  else
    hint="the run did not get to MPI_Finalize"
  fi
  for ((r = 0; r < ranks; r++)); do
    lines=$(grep -oE "tandem\[rank $r\]: intercepted=[0-9]+ deferred=[0-9]+ passthrough=[0-9]+ bytes_deferred=[0-9]+ access_waits=[0-9]+ wait_us=[0-9]+" "$err")
    n=$(printf '%s' "$lines" | grep -c . || true)
    if [ "$n" -ne 1 ]; then
      fail "rank $r printed $n tandem statistics lines (expected exactly 1; $hint)"
      continue
    fi
    deferred=$(printf '%s\n' "$lines" | sed -E "s/$stats_re/\\3/")
    bytes=$(printf '%s\n' "$lines" | sed -E "s/$stats_re/\\5/")
    if [ "$deferral_optional" = 0 ]; then
      [ "$deferred" -gt 0 ] || fail "rank $r: deferred=$deferred (no call was deferred): $lines"
      [ "$bytes" -gt 0 ] || fail "rank $r: bytes_deferred=$bytes: $lines"
    fi
  done
  extra=$(grep -oE 'tandem\[rank [0-9]+\]: intercepted' "$err" | grep -vE "rank ($(seq -s'|' 0 $((ranks - 1))))\]" || true)
  [ -z "$extra" ] || fail "statistics lines for unexpected ranks: $extra"
  echo "run_stress: tandem statistics:"
  grep -oE "$stats_re" "$err" | sort -t' ' -k2 | sed 's/^/  /'
fi

if [ -n "$expect_btl" ]; then
  all=$(cat "$out" "$err")
  init=$(printf '%s\n' "$all" | grep -oE 'select: initializing btl component [a-z]+' | awk '{print $5}' | sort | uniq -c | tr -s ' ' | tr '\n' ',')
  echo "run_stress: Open MPI BTL components initialised (count name): ${init%,}"
  printf '%s\n' "$all" | grep -qE "select: initializing btl component $expect_btl\$" ||
    fail "Open MPI did not initialise the $expect_btl BTL (expected inter-process transport)"
  case "$expect_btl" in
    tcp) others='vader|sm|smcuda|openib|uct|ofi|usnic' ;;
    vader) others='tcp|openib|uct|ofi|usnic' ;;
    *) others='' ;;
  esac
  if [ -n "$others" ] && printf '%s\n' "$all" | grep -qE "select: initializing btl component ($others)\$"; then
    fail "Open MPI also initialised another inter-process BTL: $(printf '%s\n' "$all" | grep -oE "select: initializing btl component ($others)\$" | sort -u | tr '\n' ' ')"
  fi
fi

if [ -n "$expect_ucx" ]; then
  cfgs=$(cat "$out" "$err" | grep -oE 'ep_cfg\[[0-9]+\]: tag\([^)]*\)' | sed -E 's/.*tag\(([^)]*)\)/\1/' | sort | uniq -c | sed -E 's/^ +//')
  echo "run_stress: UCX tagged-message lanes per endpoint configuration (count lanes):"
  printf '%s\n' "$cfgs" | sed 's/^/  /'
  if [ -z "$cfgs" ]; then
    fail "no UCX endpoint configuration logged (UCX_LOG_LEVEL=info); cannot tell the transport"
  else
    while IFS= read -r line; do
      lanes=${line#* }
      case "$expect_ucx" in
        tcp)
          # only tcp/<dev> and self/<dev> lanes; self-only endpoints are a rank talking to itself
          bad=$(printf '%s\n' $lanes | grep -vE '^(tcp|self)/' || true)
          [ -z "$bad" ] || fail "UCX endpoint uses non-TCP lanes for tagged messages: tag($lanes)"
          ;;
        shm)
          if printf '%s\n' $lanes | grep -qE '^tcp/'; then fail "UCX endpoint uses TCP lanes: tag($lanes)"; fi
          ;;
      esac
    done <<<"$cfgs"
    if [ "$expect_ucx" = tcp ] && ! printf '%s\n' "$cfgs" | grep -q 'tcp/'; then
      fail "no UCX endpoint uses TCP"
    fi
    if [ "$expect_ucx" = shm ] && ! printf '%s\n' "$cfgs" | grep -qE '(sysv|posix|cma|xpmem|knem)/'; then
      fail "no UCX endpoint uses a shared-memory transport"
    fi
  fi
fi

if [ ${#failures[@]} -gt 0 ]; then
  for f in "${failures[@]}"; do echo "run_stress: FAIL: $f" >&2; done
  echo "run_stress: FAILED after ${elapsed}s: $*" >&2
  exit 1
fi
echo "run_stress: PASSED in ${elapsed}s"
exit 0

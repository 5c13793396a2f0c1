#!/bin/sh
# `tandem bench` stopped by a signal while a run hangs: the run and everything it started
# stop with it, and tandem ends by that signal.
# Usage: bench_stopped.sh TANDEM FAKE_LAUNCHER_DIR
set -u
tandem=$1
fake=$2
pids=$(mktemp)
trap 'rm -f "$pids"' EXIT
PATH="$fake:$PATH" FAKE_LAUNCHER_PIDS="$pids" "$tandem" bench coll --coll allreduce --np 2 --rounds 1 --sizes 8 \
  --launch-timeout 100 >/dev/null 2>&1 &
bench=$!
i=0
while [ ! -s "$pids" ] || [ "$(wc -l < "$pids")" -lt 2 ]; do
  i=$((i + 1))
  [ $i -gt 100 ] && { echo "the fake launcher never started"; kill -KILL $bench; exit 1; }
  sleep 0.1
done
kill -TERM $bench
wait $bench
rc=$?
[ $rc -eq 143 ] || { echo "tandem exited with $rc, not by SIGTERM (143)"; exit 1; }
sleep 1
for p in $(cat "$pids"); do
  # alive: it exists and is not a zombie waiting for its new parent to reap it
  state=$(sed -n 's/^[0-9]* (.*) \([A-Z]\).*/\1/p' "/proc/$p/stat" 2>/dev/null)
  if [ -n "$state" ] && [ "$state" != Z ]; then
    echo "process $p of the stopped run is still alive (state $state)"
    kill -KILL "$p"
    exit 1
  fi
done
echo "bench stopped with its run"

#!/bin/sh
# expect_failure.sh PATTERN COMMAND...: passes when COMMAND exits with a nonzero status
# and its output (both streams, echoed) does not contain PATTERN.
pattern=$1
shift
out=$("$@" 2>&1)
rc=$?
printf '%s\n' "$out"
if [ "$rc" -eq 0 ]; then echo "expect_failure: FAIL: the command exited 0"; exit 1; fi
if printf '%s\n' "$out" | grep -q -- "$pattern"; then echo "expect_failure: FAIL: output contains '$pattern'"; exit 1; fi
echo "expect_failure: PASS (exit status $rc)"

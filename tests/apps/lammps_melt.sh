#!/usr/bin/env bash
# A real program no one here wrote: LAMMPS (Debian's lmp, built against Debian's Open MPI)
# runs its melt example on 2 ranks plainly and under `tandem run`; the thermodynamic output
# and the atom dump must be bit-identical, and tandem must really have deferred calls.
# Usage: lammps_melt.sh <tandem binary> <work dir>
set -euo pipefail
tandem="$(realpath "$1")"; work="$2"
if ! command -v lmp >/dev/null; then echo "SKIP: lmp (Debian package lammps) is not installed"; exit 77; fi
example=/usr/share/lammps/examples/melt/in.melt
[ -f "$example" ] || { echo "SKIP: $example missing (package lammps-examples)"; exit 77; }
rm -rf "$work"; mkdir -p "$work"; cd "$work"
# A larger box than the example's, so ghost-atom messages exceed the deferral threshold,
# and the dump enabled (every atom's position, full precision, every 50 steps).
sed -e 's/block 0 10 0 10 0 10/block 0 16 0 16 0 16/' \
    -e 's/^#dump\t\tid all atom 50 dump.melt/dump\t\tid all custom 50 dump.melt id type x y z vx vy vz\ndump_modify\tid sort id format float %.17g/' \
    "$example" > in.melt
grep -q '^dump' in.melt || { echo "could not enable the dump in $example"; exit 1; }
launch=(mpirun.openmpi --allow-run-as-root -np 2 --oversubscribe --mca btl self,vader --bind-to none
        --mca mpi_yield_when_idle 1)
filter() { grep -E '^ +[0-9]+ +[-0-9.e]+ +[-0-9.e]+ +[-0-9.e]+ +[-0-9.e]+ +[-0-9.e]+ *$' "$1"; }
mkdir plain tandem
(cd plain && "${launch[@]}" lmp -in ../in.melt -log none -echo none > out.txt 2> err.txt)
(cd tandem && TANDEM_STATS=1 TANDEM_LOCAL=on "$tandem" run -- "${launch[@]}" lmp -in ../in.melt -log none -echo none > out.txt 2> err.txt)
filter plain/out.txt > plain/thermo.txt
filter tandem/out.txt > tandem/thermo.txt
[ "$(wc -l < plain/thermo.txt)" -ge 6 ] || { echo "no thermo output from plain LAMMPS"; cat plain/out.txt; exit 1; }
cmp plain/thermo.txt tandem/thermo.txt || { echo "thermo output differs"; diff plain/thermo.txt tandem/thermo.txt | head; exit 1; }
cmp plain/dump.melt tandem/dump.melt || { echo "atom dump differs"; exit 1; }
grep 'tandem\[rank' tandem/err.txt
deferred=$(grep -o 'deferred=[0-9]*' tandem/err.txt | cut -d= -f2 | sort -n | head -1)
[ "$(grep -c 'tandem\[rank' tandem/err.txt)" -eq 2 ] || { echo "missing statistics lines"; cat tandem/err.txt; exit 1; }
[ "${deferred:-0}" -gt 0 ] || { echo "tandem deferred no call"; exit 1; }
echo "identical: $(wc -l < plain/thermo.txt) thermo lines, $(wc -c < plain/dump.melt) dump bytes; every rank deferred >= $deferred calls"

#!/usr/bin/env bash
# Runs a command as N MPI ranks (ctest: the data-parallel suites). Usage: run_mpi.sh N COMMAND...
# Skips (status 77, shown by ctest as skipped) when mpirun is absent. As root, Open MPI refuses to
# start unless told explicitly: the two OMPI_ALLOW_RUN_AS_ROOT variables do that for this command
# only. --oversubscribe: CI machines may count fewer slots than ranks. One OpenMP thread per rank:
# the ranks share the machine's cores.
set -euo pipefail
n="$1"
shift
if ! command -v mpirun > /dev/null; then
  echo "SKIPPED: mpirun not found (install openmpi-bin)"
  exit 77
fi
if [ "$(id -u)" = 0 ]; then
  export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
fi
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-1}"
exec mpirun -np "$n" --oversubscribe "$@"

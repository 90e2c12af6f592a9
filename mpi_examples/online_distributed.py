"""The adaptive reduced model of cases/plate_creep by row blocks: loaded on the ranks, one
enriched query, the same answers as one process.

    mpiexec -n 2 .venv/bin/python mpi_examples/online_distributed.py        (a few seconds)

Rank 0 runs the training loadings into a snapshot store; every rank builds its rows of
the reduced model; ``rom.load(path, comm=comm)`` gives each rank its rows of the
full-size bases (read when first used); a query outside the training family is answered
with enrichment (full-order steps on the ranks, bases updated by rows). Prints, per rank,
the rows it holds of every full-size array and its peak memory, and ``PASS`` when the
displacement equals the one-process answer to 1e-8 (relative).
"""
from __future__ import annotations

import resource
import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np
from mpi4py import MPI

import rom.fom.solver  # noqa: F401 - PETSc initialization is collective: every rank
from rom.config import load_case
from rom.online import OnlineConfig, build_reduced_model, load
from rom.parallel import rank0_print, world

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
from test_online_common import OUTSIDE, store_from_rank0


def main(comm, tmp: Path) -> bool:
    case_file = store_from_rank0(tmp, comm)            # the snapshot store (serial)
    path = build_reduced_model(load_case(case_file), comm, OnlineConfig(indicator_tol=5e-4),
                               path=tmp / "model.rom.h5")
    times = np.linspace(0.0, 20.0, 9)
    serial = load(path)                                 # every rank: all rows, one process
    ref = serial.solve(OUTSIDE, times, enrich=True, tol=1e-4, verbose=False)
    model = load(path, comm)                            # each rank: its rows
    res = model.solve(OUTSIDE, times, enrich=True, tol=1e-4, comm=comm, verbose=False)
    n0, n1 = model.bases.partition.node_range
    worst = 0.0
    for i in range(1, times.size):
        u = ref.displacement(i)
        worst = max(worst, np.abs(res.displacement(i) - u[n0:n1]).max() / np.abs(u).max())
    worst = comm.allreduce(worst, op=MPI.MAX)
    rows = ", ".join(f"{n} {a.n_local}/{a.n_rows}" for n, a in model.bases.arrays().items())
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    for line in comm.gather(f"rank {comm.rank}: rows {rows}; peak RSS {peak:.0f} MB", root=0) \
            or []:
        print(line, flush=True)
    rank0_print(comm, f"{len(res.enrichments)} enrichments (one process: "
                      f"{len(ref.enrichments)}); {model.n_modes} modes, {model.n_points} "
                      f"reduced points; displacement differs from one process by {worst:.1e} "
                      "(relative)")
    return worst <= 1e-8 and len(res.enrichments) == len(ref.enrichments)


if __name__ == "__main__":
    comm = world()
    tmp = Path(comm.bcast(tempfile.mkdtemp() if comm.rank == 0 else None, root=0))
    try:
        ok = main(comm, tmp)
        rank0_print(comm, "PASS" if ok else "FAIL")
    finally:
        comm.Barrier()
        if comm.rank == 0:
            shutil.rmtree(tmp, ignore_errors=True)
    sys.exit(0 if ok else 1)

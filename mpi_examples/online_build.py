"""Distributed offline build of the adaptive reduced model of cases/plate_creep.

    mpiexec -n 2 .venv/bin/python mpi_examples/online_build.py        (a few seconds)

Rank 0 runs the training loadings (serial PETSc) into a snapshot store; then every rank
reads only its row block of the store and the reduced model is built on all ranks
(rom.online.build_reduced_model with the communicator). The same model built serially by
rank 0 must give the same online answer (1e-8 relative) for a query inside and one
outside the training family.
"""
from __future__ import annotations

import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np

import rom.fom.solver  # noqa: F401 - PETSc initialization is collective: every rank
from rom.config import load_case
from rom.online import OnlineConfig, build_reduced_model, load
from rom.parallel import rank0_print, world

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
from test_online_common import INSIDE, OUTSIDE, store_from_rank0


def main(comm, tmp: Path) -> None:
    case_file = store_from_rank0(tmp, comm)            # the snapshot store (serial)
    cfg = OnlineConfig(indicator_tol=5e-4)
    par = build_reduced_model(load_case(case_file), comm, cfg, path=tmp / "par.rom.h5")
    worst = None
    if comm.rank == 0:
        ser = build_reduced_model(load_case(case_file), None, cfg, path=tmp / "ser.rom.h5")
        a_model, b_model = load(par), load(ser)
        assert np.array_equal(a_model.operator.points, b_model.operator.points)
        times = np.linspace(0.0, 20.0, 5)
        worst = 0.0
        for formula in (INSIDE, OUTSIDE):
            a, b = a_model.solve(formula, times), b_model.solve(formula, times)
            for i in range(times.size):
                u = b.displacement(i)
                worst = max(worst, np.linalg.norm(a.displacement(i) - u)
                            / max(np.linalg.norm(u), 1e-300))
            np.testing.assert_allclose(a.indicator, b.indicator, rtol=1e-8, atol=1e-14)
        assert worst <= 1e-8, worst
        print(f"{a_model.n_modes} modes, {a_model.n_points} reduced points; built on "
              f"{comm.size} ranks vs serially: online displacement differs by {worst:.1e} "
              f"(relative), indicators agree to 1e-8")
    worst = comm.bcast(worst, root=0)
    rank0_print(comm, "PASS" if worst is not None and worst <= 1e-8 else "FAIL")


if __name__ == "__main__":
    comm = world()
    tmp = Path(comm.bcast(tempfile.mkdtemp() if comm.rank == 0 else None, root=0))
    try:
        main(comm, tmp)
    finally:
        comm.Barrier()
        if comm.rank == 0:
            shutil.rmtree(tmp, ignore_errors=True)

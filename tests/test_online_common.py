"""Shared helpers of tests/test_online*.py (no tests here): the CI-size plate_creep case."""
from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
from mpi4py import MPI

ROOT = Path(__file__).resolve().parents[1]
CASE_DIR = ROOT / "cases" / "plate_creep"
TIMES = np.linspace(0.0, 20.0, 9)
INSIDE = "875 + 200 * exp(-((x - 0.03) / 0.01)**2) * minimum(t / 5, 1)"
OUTSIDE = ("900 + 250 * y / 0.01 * minimum(t / 5, 1) "
           "+ 150 * exp(-((x - 0.005) / 0.008)**2)")
TOL = 5e-4          # indicator tolerance calibrated for a 1 % true error (see docs)


def copy_case(dest: Path) -> Path:
    """cases/plate_creep with its outputs under ``dest``; returns the case file."""
    dest.mkdir(parents=True, exist_ok=True)
    shutil.copy(CASE_DIR / "mesh.inp", dest / "mesh.inp")
    text = (CASE_DIR / "case.yaml").read_text().replace("../../out/plate_creep", "out")
    (dest / "case.yaml").write_text(text)
    return dest / "case.yaml"


def run_fom(case_file: Path) -> None:
    from rom.fom.run import load_fom_case, run_case
    run_case(load_fom_case(case_file), MPI.COMM_SELF, progress=False)


def store_from_rank0(dest: Path, comm, prepare=copy_case) -> Path:
    """A case written by ``prepare(dest)`` (which returns its case file) and its snapshot
    store, both by rank 0 alone (serial: one store for any rank count; the other ranks'
    ``dest`` is not used); returns rank 0's case file on every rank once it is written."""
    case_file = None
    if comm.rank == 0:
        case_file = prepare(dest)
        run_fom(case_file)
    return comm.bcast(case_file, root=0)


def plate_mesh(cells: tuple[int, int, int]):
    """cases/plate_creep's mesh (its ``make_mesh.make``) with ``cells`` hex8 per direction."""
    import sys
    sys.path.insert(0, str(CASE_DIR))
    try:
        from make_mesh import make
    finally:
        sys.path.pop(0)
    return make(cells)


def reference(model, formula: str, times=TIMES):
    """High-fidelity (u (n_nodes, 3), p (n_qp,)) per step 1.. of ``formula`` (serial)."""
    from rom.fom.run import load_fom_case
    from rom.fom.setup import loads_from_config
    from rom.fom.solver import MechanicalSolver, NewtonOptions
    from rom.online.solve import temperature_at_nodes
    fc = load_fom_case(model.meta["case_file"])
    s = MechanicalSolver(model.mesh, model.law, loads_from_config(fc.loading, 0.0),
                         comm=MPI.COMM_SELF, petsc_options={"ksp_rtol": 1e-12},
                         newton=NewtonOptions(rtol=1e-10))
    out = []
    s.solve(times, lambda t: temperature_at_nodes(model, formula, t, 0),
            callback=lambda i, st: out.append((st.u.copy(), s.gather_points(st.internal[:, 6]))))
    s.destroy()
    return out


def errors(result, ref) -> tuple[np.ndarray, np.ndarray]:
    """Relative errors of displacement and p per step 1.. (Euclidean over nodes/points)."""
    eu = [np.linalg.norm(result.displacement(i) - u) / np.linalg.norm(u)
          for i, (u, _) in enumerate(ref, start=1)]
    ep = [np.linalg.norm(result.p(i) - p) / np.linalg.norm(p) for i, (_, p) in
          enumerate(ref, start=1)]
    return np.array(eu), np.array(ep)

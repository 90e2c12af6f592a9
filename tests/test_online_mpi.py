"""Reduced-model artifact and enrichment at 1, 2 and 3 ranks (run under mpiexec too)."""
from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("petsc4py")
from test_online_common import INSIDE, OUTSIDE, TOL, copy_case, run_fom

import rom.fom.solver  # noqa: F401 - PETSc initialization is collective: every rank
from rom.config import load_case
from rom.online import OnlineConfig, build_reduced_model, load

TIMES = np.linspace(0.0, 20.0, 5)


@pytest.mark.mpi
def test_artifact_independent_of_rank_count_and_parallel_enrichment(comm, shared_tmp_path):
    case_file = shared_tmp_path / "case.yaml"
    if comm.rank == 0:
        copy_case(shared_tmp_path)
        run_fom(case_file)                   # one serial snapshot store for every rank count
    comm.barrier()
    cfg = OnlineConfig(indicator_tol=TOL)
    par = build_reduced_model(load_case(case_file), comm, cfg,
                              path=shared_tmp_path / "par.rom.h5")
    # serial reference artifact, built by rank 0 alone
    ser = None
    if comm.rank == 0:
        ser = build_reduced_model(load_case(case_file), None, cfg,
                                  path=shared_tmp_path / "ser.rom.h5")
    ser = comm.bcast(ser, root=0)
    for formula in (INSIDE, OUTSIDE):
        a, b = load(par).solve(formula, TIMES), load(ser).solve(formula, TIMES)
        for i in range(TIMES.size):
            u = b.displacement(i)
            assert np.linalg.norm(a.displacement(i) - u) <= 1e-8 * max(np.linalg.norm(u), 1e-300)
        np.testing.assert_allclose(a.indicator, b.indicator, rtol=1e-8, atol=1e-14)
    # enrichment with the high-fidelity step distributed over comm
    model = load(par)
    plain = model.solve(OUTSIDE, TIMES)
    res = model.solve(OUTSIDE, TIMES, enrich=True, tol=TOL, comm=comm)
    assert len(res.enrichments) >= 1
    assert res.indicator[-1] < plain.indicator[-1]
    mine = np.concatenate([res.coordinates[-1], res.indicator])
    assert all(np.array_equal(mine, other) for other in comm.allgather(mine))

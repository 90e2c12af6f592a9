"""Reduced-model artifact and enrichment at 1, 2 and 3 ranks (run under mpiexec too)."""
from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("petsc4py")
from test_online_common import INSIDE, OUTSIDE, TOL, store_from_rank0

import rom.fom.solver  # noqa: F401 - PETSc initialization is collective: every rank
from rom.config import load_case
from rom.online import OnlineConfig, build_reduced_model, load

TIMES = np.linspace(0.0, 20.0, 5)


@pytest.mark.mpi
def test_artifact_independent_of_rank_count_and_parallel_enrichment(comm, shared_tmp_path):
    case_file = store_from_rank0(shared_tmp_path, comm)  # one serial store for every size
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
    # enrichment with the high-fidelity step and the bases distributed over comm
    model = load(par, comm)
    plain = model.solve(OUTSIDE, TIMES)
    res = model.solve(OUTSIDE, TIMES, enrich=True, tol=TOL, comm=comm)
    assert len(res.enrichments) >= 1
    assert res.indicator[-1] < plain.indicator[-1]
    mine = np.concatenate([res.coordinates[-1], res.indicator])
    assert all(np.array_equal(mine, other) for other in comm.allgather(mine))


@pytest.mark.mpi
def test_training_check_and_crossval_independent_of_rank_count(comm, shared_tmp_path):
    """check_and_calibrate on comm (heat and reduced solves, folds) stores the same training
    check, cross-validation and calibrated tolerance as on one rank."""
    import dataclasses
    import shutil

    from rom.online.training import check_and_calibrate
    case_file = store_from_rank0(shared_tmp_path, comm)
    case = load_case(case_file)
    case = dataclasses.replace(case, online=dataclasses.replace(
        case.online, indicator_factor=2.0, indicator_crossval=0.9))
    par, ser = shared_tmp_path / "par.rom.h5", shared_tmp_path / "ser.rom.h5"
    build_reduced_model(case, comm, path=par)
    if comm.rank == 0:
        shutil.copy(par, ser)
    comm.barrier()
    check_and_calibrate(case, par, comm)
    if comm.rank == 0:
        from mpi4py import MPI
        check_and_calibrate(case, ser, MPI.COMM_SELF)
    comm.barrier()
    a, b = load(par).meta, load(ser).meta
    for key in ("training_check", "crossval"):
        for field in ("err_u", "err_p", "indicator"):
            np.testing.assert_allclose(a[key][field], b[key][field], rtol=1e-8)
    assert a["crossval"]["n_modes"] == b["crossval"]["n_modes"]
    assert a["indicator_tol"] == pytest.approx(b["indicator_tol"], rel=1e-8)

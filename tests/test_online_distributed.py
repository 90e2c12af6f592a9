"""The reduced model by row blocks (issue: distributed memory; DESIGN.md section 7): load
by rows, queries and enrichment with every full-size array split over the ranks, equal to
the one-process answers (run serially and under mpiexec -n 2 and -n 3)."""
from __future__ import annotations

import numpy as np
import pytest
from mpi4py import MPI

pytest.importorskip("petsc4py")
from test_online_common import INSIDE, OUTSIDE, TIMES, store_from_rank0

import rom.fom.solver  # noqa: F401 - PETSc initialization is collective: every rank
from rom.config import load_case
from rom.online import OnlineConfig, build_reduced_model, load
from rom.parallel import UserError

CFG = OnlineConfig(indicator_tol=5e-4)
ENRICH_TOL = 1e-4


@pytest.fixture(scope="module")
def model_path(tmp_path_factory):
    """The CI case's reduced model, built on every rank of COMM_WORLD (same path)."""
    comm = MPI.COMM_WORLD
    case_file = store_from_rank0(tmp_path_factory.mktemp("online_distributed"), comm)
    return build_reduced_model(load_case(case_file), comm, CFG,
                               path=case_file.parent / "model.rom.h5")


def _rows_are_a_share(model, comm) -> None:
    """Every full-size array a rank holds has about 1 / P of the rows (whole elements:
    one hex8 element's points of slack), and the blocks tile the rows."""
    for name, a in model.bases.arrays().items():
        per = a.n_rows // (3 * model.meta["n_nodes"]) if name in ("phi", "f_unit") else \
            a.n_rows // model.meta["n_qp"]
        slack = (3 if name in ("phi", "f_unit") else 8) * per
        assert abs(a.n_local - a.n_rows / comm.size) <= slack, (name, a.n_local, a.n_rows)
        if a.loaded:
            assert all(b.shape[0] == a.n_local for b in a.blocks), name
        assert comm.allreduce(a.n_local) == a.n_rows, name


@pytest.mark.mpi
def test_query_by_row_blocks_equals_serial(comm, model_path):
    serial = load(model_path)
    model = load(model_path, comm)
    assert not any(a.loaded for a in model.bases.arrays().values())   # nothing read yet
    ref, res = serial.solve(INSIDE, TIMES), model.solve(INSIDE, TIMES)
    assert not any(a.loaded for a in model.bases.arrays().values())   # a query reads none
    for a, b in zip(ref.coordinates, res.coordinates):
        np.testing.assert_array_equal(a, b)
    n0, n1 = model.bases.partition.node_range
    p0, p1 = model.bases.partition.point_range
    for i in (1, TIMES.size - 1):   # fields: this rank's rows of the serial ones
        np.testing.assert_allclose(res.displacement(i), ref.displacement(i)[n0:n1],
                                   rtol=0, atol=1e-12 * np.abs(ref.displacement(i)).max())
        np.testing.assert_allclose(res.p(i), ref.p(i)[p0:p1], rtol=0,
                                   atol=1e-12 * np.abs(ref.p(i)).max())
        np.testing.assert_allclose(res.stress(i), ref.stress(i)[p0:p1], rtol=0,
                                   atol=1e-9 * np.abs(ref.stress(i)).max())
    assert model.bases.phi.loaded and not model.bases.psi_z.loaded
    _rows_are_a_share(model, comm)


@pytest.mark.mpi
def test_enrichment_by_row_blocks_equals_serial_and_reloads_at_another_size(
        comm, model_path, shared_tmp_path):
    serial = load(model_path)
    ref = serial.solve(OUTSIDE, TIMES, enrich=True, tol=ENRICH_TOL, verbose=False)
    model = load(model_path, comm)
    res = model.solve(OUTSIDE, TIMES, enrich=True, tol=ENRICH_TOL, comm=comm, verbose=False)
    assert [e["step"] for e in res.enrichments] == [e["step"] for e in ref.enrichments]
    assert len(res.enrichments) >= 1
    np.testing.assert_array_equal(model.operator.points, serial.operator.points)
    for a, b in zip(ref.coordinates, res.coordinates):   # bases agree up to signs: compare u
        assert a.shape == b.shape
    n0, n1 = model.bases.partition.node_range
    for i in range(1, TIMES.size):
        u_ref = ref.displacement(i)
        np.testing.assert_allclose(res.displacement(i), u_ref[n0:n1], rtol=0,
                                   atol=1e-8 * np.abs(u_ref).max())
    np.testing.assert_allclose(res.indicator, ref.indicator, rtol=1e-6, atol=1e-12)
    _rows_are_a_share(model, comm)
    # saved by the P ranks, loaded on another number of ranks: the same answers
    path = model.save(shared_tmp_path / "enriched.rom.h5")
    sub = comm.Split(0 if comm.rank < max(comm.size - 1, 1) else MPI.UNDEFINED, comm.rank)
    if sub != MPI.COMM_NULL:
        again = load(path, sub)
        assert again.n_modes == model.n_modes and again.meta["n_enrichments"] >= 1
        a, b = again.solve(OUTSIDE, TIMES), model.copy()
        u = serial.solve(OUTSIDE, TIMES)          # the serially enriched model
        m0, m1 = again.bases.partition.node_range
        for i in range(1, TIMES.size):
            ui = u.displacement(i)
            np.testing.assert_allclose(a.displacement(i), ui[m0:m1], rtol=0,
                                       atol=1e-8 * np.abs(ui).max())
        del b
        sub.Free()
    comm.Barrier()


@pytest.mark.mpi
def test_enrichment_on_another_communicator_is_a_user_error(model_path):
    model = load(model_path)           # one process
    if MPI.COMM_WORLD.size == 1:
        pytest.skip("needs several ranks")
    with pytest.raises(UserError, match="rom.load\\(path, comm=comm\\)"):
        model.solve(OUTSIDE, TIMES, enrich=True, comm=MPI.COMM_WORLD)

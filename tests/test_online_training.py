"""The reduced model on its own training loadings (rom.online.training, docs/online.md)."""
from __future__ import annotations

import io

import numpy as np
import pytest

pytest.importorskip("petsc4py")

from mpi4py import MPI
from test_online_common import TIMES, copy_case, run_fom

from rom.config import load_case
from rom.io.snapshots import SnapshotStore
from rom.online import load


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """plate_creep trained and reduced by ``rom.offline.run`` with a calibrated tolerance."""
    case_file = copy_case(tmp_path_factory.mktemp("training"))
    case_file.write_text(case_file.read_text().replace(
        "online: {indicator_tol: 5.0e-4}", "online: {indicator_tol: 5.0e-4, indicator_factor: 2.0}"))
    run_fom(case_file)
    from rom.offline import run
    out = io.StringIO()
    res = run(load_case(case_file), MPI.COMM_SELF, progress=False, out=out)
    return case_file, res.online, out.getvalue()


def test_training_errors_match_a_direct_solve(built):
    """The stored training check equals errors computed here from the store and a reduced
    solve of each training formula; the model is accurate on its training loadings."""
    case_file, path, _ = built
    case = load_case(case_file)
    model = load(path)
    chk = model.meta["training_check"]
    specs = {lc.name: lc.temperature.formula for lc in case.fom.loadings}
    assert chk["names"] == list(specs)
    with SnapshotStore.open(case.snapshots.store) as st:
        for k, name in enumerate(chk["names"]):  # loop over training loadings
            U = st.read_global("displacement", loading=name).T
            P = st.read_global("p", loading=name).T
            r = model.copy().solve(specs[name], TIMES)
            eu = max(np.linalg.norm(r.displacement(i).ravel() - U[i - 1])
                     for i in range(1, TIMES.size)) / np.linalg.norm(U, axis=1).max()
            ep = max(np.linalg.norm(r.p(i) - P[i - 1])
                     for i in range(1, TIMES.size)) / np.linalg.norm(P, axis=1).max()
            assert chk["err_u"][k] == pytest.approx(eu, rel=1e-6, abs=1e-12)
            assert chk["err_p"][k] == pytest.approx(ep, rel=1e-6, abs=1e-12)
            assert chk["indicator"][k] == pytest.approx(np.max(r.indicator[1:]), rel=1e-6)
    assert max(chk["err_u"]) < 1e-3 and max(chk["err_p"]) < 1e-2


def test_calibrated_tolerance_is_stored_and_used(built):
    _, path, text = built
    model = load(path)
    eta = max(model.meta["training_check"]["indicator"])
    assert model.meta["indicator_tol"] == pytest.approx(2.0 * eta, rel=1e-12)
    assert "indicator_factor 2 x largest training indicator" in model.meta["indicator_tol_source"]
    assert "training check (4 loadings)" in text
    # the enrichment uses the model's tolerance: a query with a larger indicator is enriched
    from test_online_common import OUTSIDE
    r = model.copy().solve(OUTSIDE, TIMES, enrich=True)
    assert r.enrichments and all(e["indicator_before"] > model.meta["indicator_tol"]
                                 for e in r.enrichments)


def test_factor_needs_the_training_loadings(tmp_path):
    from rom.parallel import UserError
    case_file = copy_case(tmp_path)
    case_file.write_text(case_file.read_text().replace(
        "online: {indicator_tol: 5.0e-4}",
        "online: {indicator_tol: 5.0e-4, indicator_factor: 2.0, check_training: false}"))
    run_fom(case_file)
    from rom.offline import run
    with pytest.raises(UserError, match="indicator_factor: needs online.check_training"):
        run(load_case(case_file), MPI.COMM_SELF, progress=False, out=io.StringIO())


def test_worst_training_loadings_relative_to_the_targets():
    from rom.online.training import TrainingCheck
    chk = TrainingCheck(["a", "b", "c"], np.array([0.02, 0.001, 0.005]),
                        np.array([0.01, 0.03, 0.001]), np.array([1e-3, 2e-3, 3e-4]))
    np.testing.assert_allclose(chk.score(), [2.0, 1.5, 0.5])
    assert chk.worst(2).startswith("a (e_u 2.0e-02") and ", b (" in chk.worst(2)

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
    """plate_creep trained and reduced by ``rom.offline.run`` with a calibrated tolerance
    (both calibrations: the smaller tolerance is kept)."""
    case_file = copy_case(tmp_path_factory.mktemp("training"))
    case_file.write_text(case_file.read_text().replace(
        "online: {indicator_tol: 5.0e-4}",
        "online: {indicator_tol: 5.0e-4, indicator_factor: 2.0, indicator_crossval: 0.9}"))
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
    from rom.online.crossval import crossval_tolerance
    _, path, text = built
    model = load(path)
    eta = max(model.meta["training_check"]["indicator"])
    cv = model.meta["crossval"]
    score = np.maximum(np.array(cv["err_u"]) / 0.01, np.array(cv["err_p"]) / 0.02)
    tol_cv, why = crossval_tolerance(cv["indicator"], score, 0.9, cv["names"])
    assert model.meta["indicator_tol"] == pytest.approx(min(2.0 * eta, tol_cv), rel=1e-12)
    source = model.meta["indicator_tol_source"]
    assert source == (why if tol_cv < 2.0 * eta else
                      f"online.indicator_factor 2 x largest training indicator {eta:.3g}")
    assert "training check (4 loadings)" in text
    # the enrichment uses the model's tolerance: a query with a larger indicator is enriched
    from test_online_common import OUTSIDE
    r = model.copy().solve(OUTSIDE, TIMES, enrich=True)
    assert r.enrichments and all(e["indicator_before"] > model.meta["indicator_tol"]
                                 for e in r.enrichments)


def test_calibration_aims_at_the_study_targets(built, tmp_path):
    """The cross-validated tolerance scores the folds against the case's study: targets:
    tighter targets put more folds above them and give a smaller tolerance."""
    import shutil
    from dataclasses import replace

    from rom.online.crossval import crossval_tolerance
    from rom.online.training import check_and_calibrate, error_targets
    case_file, path, _ = built
    case = load_case(case_file)
    assert error_targets(case) == (0.01, 0.02) == tuple(load(path).meta["error_targets"])
    cv = load(path).meta["crossval"]
    tight = (0.1 * min(cv["err_u"]), 0.1 * min(cv["err_p"]))    # every fold above them
    case = replace(case, study=replace(case.study, error_tol_displacement=tight[0],
                                       error_tol_p=tight[1]))
    copy = tmp_path / "tight.rom.h5"
    shutil.copy(path, copy)
    check_and_calibrate(case, copy, MPI.COMM_SELF)
    meta = load(copy).meta
    assert meta["error_targets"] == list(tight) == meta["crossval"]["targets"]
    score = np.maximum(np.array(cv["err_u"]) / tight[0], np.array(cv["err_p"]) / tight[1])
    tol, _ = crossval_tolerance(cv["indicator"], score, 0.9, cv["names"])
    assert tol < 0.9 * min(cv["indicator"])                   # every fold flagged
    eta = max(meta["training_check"]["indicator"])
    assert meta["indicator_tol"] == pytest.approx(min(2.0 * eta, tol), rel=1e-9)
    assert meta["indicator_tol"] < load(path).meta["indicator_tol"]


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


def test_fold_with_the_whole_bases_is_the_training_check(built):
    """A cross-validation fold whose bases are the model's (R = I) is the model itself: its
    errors, computed from the snapshots' coordinates and residuals only, and its indicator
    equal the training check's, computed from the full-size fields."""
    from rom.online.crossval import fold_solve
    from rom.online.training import training_check
    case_file, path, _ = built
    model = load(path)
    folds: list = []
    chk = training_check(case_file, model, MPI.COMM_SELF, folds=folds)
    assert [d.name for d in folds] == chk.names
    n, n_p = model.n_modes, model.operator.psi_p_M.shape[1]
    for k, d in enumerate(folds):  # loop over training loadings
        eu, ep, eta = fold_solve(model.operator, np.eye(n), np.eye(n_p), d)
        assert eu == pytest.approx(chk.err_u[k], rel=1e-6)
        assert ep == pytest.approx(chk.err_p[k], rel=1e-6)
        assert eta == pytest.approx(chk.indicator[k], rel=1e-9)


def test_left_out_loadings_are_harder_than_trained_ones(built):
    """A loading left out of the bases is answered no better than when trained on, and
    the worst left out is clearly worse (measured: 6x on u, 3.2x on p, 2.1x on the
    indicator): the folds are held-out queries. A loading the others span keeps every
    mode and its errors (t800_a100, the coolest, here)."""
    _, path, _ = built
    model = load(path)
    tr, cv = model.meta["training_check"], model.meta["crossval"]
    assert cv["names"] == tr["names"]
    assert max(cv["n_modes"]) <= model.n_modes and min(cv["n_modes"]) < model.n_modes
    for key in ("err_u", "err_p", "indicator"):
        assert all(c >= t * (1 - 1e-6) for c, t in zip(cv[key], tr[key])), key
        assert max(cv[key]) > 2.0 * max(tr[key]), key


def test_truncated_basis_keeps_the_energy_criterion():
    """The fold basis has the smallest r with sum_{i>r} s_i^2 <= rtol^2 sum s_i^2 (read off
    the singular values here) and spans the leading left singular vectors."""
    from rom.online.crossval import truncated_basis
    rng = np.random.default_rng(3)
    C = rng.standard_normal((40, 30)) * np.logspace(0, -8, 30)
    Uc, s, _ = np.linalg.svd(C, full_matrices=False)
    e = s * s
    for rtol in (1e-2, 1e-4, 1e-6):
        r = next(r for r in range(1, s.size + 1) if e[r:].sum() <= rtol**2 * e.sum())
        B = truncated_basis(C, rtol)
        assert B.shape[1] == r
        np.testing.assert_allclose(B.T @ B, np.eye(r), atol=1e-12)
        np.testing.assert_allclose(np.abs(Uc[:, :r].T @ B), np.eye(r), atol=1e-6)


def test_crossval_tolerance_from_the_loadings_above_target():
    from rom.online.crossval import crossval_tolerance
    eta = np.array([1e-3, 4e-3, 3e-3, 9e-3, np.inf])
    score = np.array([0.2, 0.9, 1.5, 3.0, np.inf])        # the last fold diverged
    tol, why = crossval_tolerance(eta, score, 0.8, ["a", "b", "c", "d", "e"])
    assert tol == pytest.approx(0.8 * 2e-3) and "of the 2 cross-validated" in why
    assert "(c)" in why
    assert np.all(eta[score > 1][:2] > tol)               # every one above target flagged
    # none above target: the indicator at which the first would reach its target
    tol, why = crossval_tolerance(eta[:2], score[:2], 1.0)
    assert tol == pytest.approx(min(1e-3 / 0.2, 4e-3 / 0.9)) and "none above" in why


def test_crossval_tolerance_margin_excuses_folds_barely_above_target():
    # the 53-loading blade at size 2 (cases/blade/results/size2-greedy): train27 misses p
    # by 1.07x with indicator 1.49e-3, the next above target give 3.3e-3 .. 3.5e-3
    from rom.online.crossval import crossval_tolerance
    eta = np.array([1.491e-3, 4.260e-3, 4.645e-3, 1.127e-3, 7.879e-3])
    score = np.array([1.07, 1.22, 1.40, 0.42, 2.01])
    names = ["train27", "train20", "greedy8", "train35", "train0"]
    tol0, why0 = crossval_tolerance(eta, score, 1.0, names)
    assert tol0 == pytest.approx(1.491e-3 / 1.07) and "(train27)" in why0
    assert "margin" not in why0
    tol, why = crossval_tolerance(eta, score, 1.0, names, margin=0.1)
    assert tol == pytest.approx(4.645e-3 / 1.40) and "(greedy8)" in why
    assert "of the 3 cross-validated loading(s) above the error targets by more than 0.1" \
        in why and "1 within the margin 0.1 not counted: train27" in why
    assert eta[0] < tol and np.all(eta[score > 1.1] > tol)   # only the excused one missed
    # a margin wider than every overshoot: the minimum over all folds, as with none above
    tol, why = crossval_tolerance(eta, score, 1.0, names, margin=1.5)
    assert tol == pytest.approx(np.min(eta / score)) and "none above" in why
    assert "4 within the margin 1.5 not counted" in why
    with pytest.raises(ValueError, match="margin"):
        crossval_tolerance(eta, score, 1.0, names, margin=-0.1)

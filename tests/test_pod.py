"""rom.linalg.pod: agreement with numpy's SVD, rank-count independence, accuracy limits of
each method, inner products, truncation rule and input errors.

Distributed tests build the full matrix identically on every rank (seeded), take this
rank's rows, and compare the gathered result with numpy and with the serial ``pod`` of
the full matrix. Tolerances are multiples of eps = 2.2e-16 unless a method limit is tested.
"""
from __future__ import annotations

import itertools

import numpy as np
import pytest
import scipy.linalg as sla
import scipy.sparse as sp
from _rowblocks import mass_matrix, matrix, offsets, rows

from rom.linalg import gather_rows, pod

EPS = np.finfo(float).eps
METHODS = ["snapshots", "tsqr", "randomized"]


def reference(A: np.ndarray):
    """numpy SVD with the pod sign convention (largest |entry| of each right vector > 0)."""
    U, s, Vt = np.linalg.svd(A, full_matrices=False)
    signs = np.sign(Vt[np.arange(s.size), np.argmax(np.abs(Vt), axis=1)])
    return U * signs, s, Vt.T * signs


def gathered(result, comm):
    return gather_rows(result.modes, comm)


@pytest.mark.mpi
@pytest.mark.parametrize("uneven", [False, True])
@pytest.mark.parametrize("method", METHODS)
def test_agrees_with_numpy_and_serial(comm, method, uneven):
    s = 0.8 ** np.arange(12)
    A = matrix(300, s)
    res = pod(rows(A, comm, uneven), comm=comm, method=method, rtol=0.0)
    Uref, sref, Vref = reference(A)
    assert res.n_modes == 12 and res.modes.shape == (rows(A, comm, uneven).shape[0], 12)
    np.testing.assert_allclose(res.singular_values, sref, rtol=1e-10)
    np.testing.assert_allclose(gathered(res, comm), Uref, atol=1e-10)
    np.testing.assert_allclose(res.right_vectors, Vref, atol=1e-10)
    # rank-count independence: the same call on the full matrix, serially
    serial = pod(A, method=method, rtol=0.0)
    np.testing.assert_allclose(gathered(res, comm), serial.modes, atol=1e-12)
    np.testing.assert_allclose(res.singular_values, serial.singular_values, rtol=1e-12)
    assert abs(res.total_energy - np.sum(s**2)) < 1e3 * EPS
    np.testing.assert_allclose(res.modes.T @ res.modes if comm.size == 1 else
                               gathered(res, comm).T @ gathered(res, comm), np.eye(12), atol=1e-14)


@pytest.mark.mpi
@pytest.mark.parametrize("weighted", [False, True])
def test_tsqr_without_reflectors(comm, weighted):
    """``reflectors=False`` (R folded chunk by chunk, modes X V S^-1 re-orthonormalized):
    the singular values of the reflector TSQR to eps, modes to eps s_1 / s_n, orthonormal
    to eps, the same at any rank count; chunks of 64 rows exercise the fold."""
    from rom.linalg import orth
    s = 10.0 ** -np.linspace(0, 9, 20)                 # s_n / s_1 = 1e-9
    A = matrix(700, s, seed=4)
    w = np.linspace(0.5, 2.0, 700) if weighted else None
    Xl = rows(A, comm, uneven=True)
    wl = None if w is None else rows(w[:, None], comm, uneven=True)[:, 0]
    ref = pod(Xl, comm=comm, method="tsqr", rtol=0.0, product=wl)
    low = pod(Xl, comm=comm, method="tsqr", rtol=0.0, product=wl, reflectors=False)
    R_fold = orth.tsqr_r(Xl, comm, chunk=64)
    np.testing.assert_allclose(low.singular_values, ref.singular_values, rtol=1e-13,
                               atol=1e3 * EPS * s[0])
    U, Uref = gathered(low, comm), gathered(ref, comm)
    M = np.eye(700) if w is None else np.diag(w)
    np.testing.assert_allclose(U.T @ M @ U, np.eye(20), atol=50 * EPS)
    assert np.abs(U - Uref).max() < 1e3 * EPS * s[0] / s[-1]
    np.testing.assert_allclose(low.right_vectors, ref.right_vectors, atol=1e3 * EPS / s[-1])
    # the folded R of the rows: R^T R = X^T X
    np.testing.assert_allclose(R_fold.T @ R_fold, A.T @ A, atol=100 * EPS)
    serial = pod(A, method="tsqr", rtol=0.0, product=w, reflectors=False)
    np.testing.assert_allclose(low.singular_values, serial.singular_values, rtol=1e-12,
                               atol=1e3 * EPS * s[0])


@pytest.mark.mpi
def test_tiny_blocks_fewer_rows_than_columns(comm):
    """N = 9 rows, m = 6 columns: ranks hold fewer rows than columns (or none)."""
    A = np.random.default_rng(3).standard_normal((9, 6))
    Uref, sref, _ = reference(A)
    for method in METHODS:
        res = pod(rows(A, comm, uneven=True), comm=comm, method=method, rtol=0.0)
        np.testing.assert_allclose(res.singular_values, sref, rtol=1e-10, err_msg=method)
        np.testing.assert_allclose(gathered(res, comm), Uref, atol=1e-10, err_msg=method)


@pytest.mark.mpi
def test_small_singular_values_tsqr_resolves_snapshots_cannot(comm):
    s = 10.0 ** -np.arange(15)                       # 1 .. 1e-14
    A = matrix(600, s, seed=1)
    Xl = rows(A, comm, uneven=True)
    qr = pod(Xl, comm=comm, method="tsqr", rtol=0.0)
    assert qr.n_modes == 15
    relerr = np.abs(qr.singular_values / s - 1)
    assert np.all(relerr[s >= 1e-13] < 1e-3), relerr
    assert np.all(relerr < 1e-2), relerr
    U = gathered(qr, comm)
    np.testing.assert_allclose(U.T @ U, np.eye(15), atol=20 * EPS)
    snap = pod(Xl, comm=comm, method="snapshots", rtol=0.0)
    # stated floor sqrt(m eps) s_1 ~ 6e-8: nothing below is returned ...
    assert snap.floor == pytest.approx(np.sqrt(15 * EPS))
    assert snap.n_modes <= np.count_nonzero(s >= 1e-8)
    assert np.all(snap.singular_values > snap.floor)
    # ... and what the Gram matrix holds there is round-off, not the singular values
    wrong = np.abs(snap.all_singular_values / s - 1)[s <= 1e-10]
    assert np.all(wrong > 0.5), wrong
    Us = gathered(snap, comm)
    np.testing.assert_allclose(Us.T @ Us, np.eye(snap.n_modes), atol=20 * EPS)


def test_snapshots_warns_when_rtol_unreachable():
    s = 10.0 ** -np.arange(15)
    with pytest.warns(RuntimeWarning, match="use method='tsqr'"):
        res = pod(matrix(200, s), method="snapshots", rtol=1e-12)
    assert res.n_modes <= 8


def expected_n(s: np.ndarray, rtol: float) -> int:
    s2 = s**2
    return next(n for n in range(s.size + 1) if s2[n:].sum() <= rtol**2 * s2.sum())


@pytest.mark.mpi
def test_randomized_meets_tolerance(comm):
    s = 2.0 ** -np.arange(100)
    A = matrix(800, s, seed=2)
    Xl = rows(A, comm)
    for rtol in (1e-2, 1e-4, 1e-6):
        res = pod(Xl, comm=comm, method="randomized", rtol=rtol)
        assert res.info == {"sketch": 32}                     # a true sketch, not the fallback
        U = gathered(res, comm)
        err = np.linalg.norm(A - U @ (U.T @ A)) / np.linalg.norm(A)
        assert err <= rtol, (rtol, err, res.n_modes)
        assert res.n_modes == expected_n(s, rtol)
        np.testing.assert_allclose(res.singular_values, s[:res.n_modes], rtol=1e-10)
        # the tail energy is total - captured: exact up to cancellation, ~eps * total
        assert abs(res.truncation_error**2 - err**2) < 100 * EPS
    res = pod(Xl, comm=comm, method="randomized", max_modes=5, rtol=1e-12)
    assert res.n_modes == 5 and res.info["sketch"] == 15
    np.testing.assert_allclose(res.singular_values, s[:5], rtol=1e-10)
    np.testing.assert_allclose(gathered(res, comm), reference(A)[0][:, :5], atol=1e-10)
    # rtol too small for the captured-energy test: exact fallback, same as tsqr
    res = pod(Xl, comm=comm, method="randomized", rtol=1e-9)
    assert res.info == {"sketch": 100, "exact": "tsqr"}
    assert res.n_modes == expected_n(s, 1e-9)


@pytest.mark.mpi
@pytest.mark.parametrize("kind", ["weights", "rowblock"])
def test_randomized_sketch_with_product(comm, kind):
    n, s = 300, 0.5 ** np.arange(40)
    A = matrix(n, s, seed=7)
    off = offsets(n, comm.size, uneven=True)
    lo, hi = off[comm.rank], off[comm.rank + 1]
    if kind == "weights":
        w = 1.0 + np.random.default_rng(8).uniform(size=n)
        Mfull, product = np.diag(w), w[lo:hi]
    else:
        Mfull, product = mass_matrix(n).toarray(), mass_matrix(n)[lo:hi]
    res = pod(A[lo:hi], comm=comm, method="randomized", max_modes=6, product=product)
    assert res.info == {"sketch": 16}
    Uref, sref, _ = product_reference(A, Mfull)
    np.testing.assert_allclose(res.singular_values, sref[:6], rtol=1e-10)
    U = gathered(res, comm)
    np.testing.assert_allclose(U.T @ Mfull @ U, np.eye(6), atol=50 * EPS)
    np.testing.assert_allclose(U, Uref[:, :6], atol=1e-9 * np.abs(Uref).max())


def product_reference(A, Mdense):
    """POD in the M product from the Euclidean SVD of L^T A, M = L L^T."""
    L = np.linalg.cholesky(Mdense)
    _, s, V = reference(L.T @ A)
    return (A @ V) / s, s, V


@pytest.mark.mpi
@pytest.mark.parametrize("kind", ["weights", "rowblock", "block"])
@pytest.mark.parametrize("method", METHODS)
def test_product(comm, method, kind):
    n, s = 240, 0.7 ** np.arange(8)
    A = matrix(n, s, seed=4)
    off = offsets(n, comm.size, uneven=True)
    lo, hi = off[comm.rank], off[comm.rank + 1]
    if kind == "weights":
        w = 1.0 + np.random.default_rng(5).uniform(size=n)
        Mfull, product = np.diag(w), w[lo:hi]
    elif kind == "rowblock":
        Mfull = mass_matrix(n).toarray()
        product = mass_matrix(n)[lo:hi]                        # (n_local, N)
    else:                                                      # block diagonal: rank-dependent
        Mfull = sla.block_diag(*[mass_matrix(n).toarray()[a:b, a:b]
                                 for a, b in itertools.pairwise(off)])
        product = sp.csr_matrix(Mfull[lo:hi, lo:hi])
    if method == "tsqr" and kind != "weights":
        with pytest.raises(ValueError, match="method='snapshots'"):
            pod(A[lo:hi], comm=comm, method=method, product=product)
        return
    res = pod(A[lo:hi], comm=comm, method=method, rtol=0.0, product=product)
    Uref, sref, _ = product_reference(A, Mfull)
    assert res.n_modes == 8
    np.testing.assert_allclose(res.singular_values, sref, rtol=1e-10)
    U = gathered(res, comm)
    np.testing.assert_allclose(U.T @ Mfull @ U, np.eye(8), atol=50 * EPS)
    np.testing.assert_allclose(U, Uref, atol=1e-9 * np.abs(Uref).max())


def test_truncation_rule_exact():
    s = np.array([1.0, 0.5, 0.25, 0.1, 0.01, 1e-3])
    A = matrix(100, s, seed=6)
    s2 = s**2
    for n in range(1, 6):
        boundary = np.sqrt(s2[n:].sum() / s2.sum())            # rtol at which n modes suffice
        for method in ("snapshots", "tsqr"):
            assert pod(A, method=method, rtol=boundary * (1 + 1e-6)).n_modes == n
            assert pod(A, method=method, rtol=boundary * (1 - 1e-6)).n_modes == n + 1
    for method in METHODS:
        assert pod(A, method=method, rtol=0.0).n_modes == 6
        assert pod(A, method=method, rtol=0.0, max_modes=2).n_modes == 2
        res = pod(A, method=method, rtol=0.3, max_modes=4)
        assert res.n_modes == expected_n(s, 0.3) == 2
        assert res.energy == pytest.approx(s2[:2].sum() / s2.sum(), rel=1e-12)


def test_zero_and_empty():
    res = pod(np.zeros((10, 3)), method="tsqr")
    assert res.n_modes == 0 and res.modes.shape == (10, 0)
    assert pod(np.zeros((10, 3)), method="snapshots").n_modes == 0


@pytest.mark.parametrize("method", METHODS)
def test_float32_and_fortran_input(method):
    A = matrix(50, 0.5 ** np.arange(5))
    ref = pod(A, method=method, rtol=0.0)
    np.testing.assert_allclose(pod(np.asfortranarray(A), method=method, rtol=0.0).modes,
                               ref.modes, atol=1e-13)
    assert pod(A.astype(np.float32), method=method, rtol=1e-3).n_modes >= 3


def test_bad_input():
    A = matrix(30, 0.5 ** np.arange(4))
    B = A.copy()
    B[7, 2] = np.nan
    for method in METHODS:
        with pytest.raises(ValueError, match=r"nan at local row 7 \(global row 7\), column 2"):
            pod(B, method=method)
    for rtol in (-0.1, 1.0, 2.0, "1e-3", None):
        with pytest.raises(ValueError, match="rtol"):
            pod(A, rtol=rtol)
    with pytest.raises(ValueError, match="unknown method 'svd'.*snapshots, tsqr, randomized"):
        pod(A, method="svd")
    with pytest.raises(ValueError, match="max_modes"):
        pod(A, max_modes=0)
    with pytest.raises(ValueError, match="2-D"):
        pod(A[:, 0])
    with pytest.raises(ValueError, match=r"product weights have shape \(29,\); expected \(30,\)"):
        pod(A, product=np.ones(29))
    with pytest.raises(ValueError, match="positive"):
        pod(A, product=-np.ones(30))
    with pytest.raises(ValueError, match=r"product has shape \(30, 7\)"):
        pod(A, product=sp.eye(30, 7))
    with pytest.raises(ValueError, match="method='snapshots'"):
        pod(A, method="tsqr", product=sp.eye(30))


@pytest.mark.mpi
def test_nan_reported_on_every_rank_with_global_row(comm):
    A = matrix(40, 0.5 ** np.arange(4))
    A[37, 1] = np.inf
    with pytest.raises(ValueError, match=r"global row 37\), column 1"):
        pod(rows(A, comm), comm=comm, method="snapshots")

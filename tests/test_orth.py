"""rom.linalg orthonormalization (gram_schmidt, cholqr, tsqr) and row-block helpers
(gram, gather_rows, apply_product). Tolerances in multiples of eps = 2.2e-16."""
from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
from _rowblocks import mass_matrix, offsets, rows

from rom.linalg import apply_product, cholqr, gather_rows, gram, gram_schmidt, tsqr

EPS = np.finfo(float).eps


def monomials(n: int, k: int) -> np.ndarray:
    """Columns x^j on [0, 1] (Gram = n x Hilbert matrix): cond ~1e11 for k = 16."""
    x = np.linspace(0, 1, n)
    return x[:, None] ** np.arange(k)


def orth_error(Q, M=None):
    G = Q.T @ (Q if M is None else M @ Q)
    return np.max(np.abs(G - np.eye(Q.shape[1])))


@pytest.mark.mpi
@pytest.mark.parametrize("uneven", [False, True])
def test_gram_schmidt_ill_conditioned(comm, uneven):
    V = monomials(900, 16)
    assert np.linalg.cond(V) > 1e10
    Q, kept = gram_schmidt(rows(V, comm, uneven), comm=comm, return_kept=True)
    Qg = gather_rows(Q, comm)
    assert kept.tolist() == list(range(16))
    assert orth_error(Qg) < 50 * EPS                                # ~1e-14
    np.testing.assert_allclose(Qg @ (Qg.T @ V), V, atol=1e-12)      # same span
    # rank-count independence, up to the forward error eps * cond(V[:, :j+1]) of column j
    Qs = gram_schmidt(V)
    for j in range(16):
        bound = 100 * EPS * np.linalg.cond(V[:, :j + 1])
        assert np.max(np.abs(Qg[:, j] - Qs[:, j])) < bound, (j, bound)


@pytest.mark.mpi
def test_gram_schmidt_in_product(comm):
    n = 600
    V = monomials(n, 10)
    off = offsets(n, comm.size, uneven=True)
    lo, hi = off[comm.rank], off[comm.rank + 1]
    Mfull = mass_matrix(n)
    for product, Mdense in [(Mfull[lo:hi], Mfull.toarray()),
                            (np.linspace(1, 2, n)[lo:hi], np.diag(np.linspace(1, 2, n)))]:
        Q = gather_rows(gram_schmidt(V[lo:hi], product=product, comm=comm), comm)
        assert Q.shape == (n, 10)
        assert orth_error(Q, Mdense) < 20 * EPS


def test_gram_schmidt_removes_dependent():
    rng = np.random.default_rng(0)
    a, b, c, d = rng.standard_normal((4, 50))
    V = np.column_stack([a, b, a + 2 * b, np.zeros(50), c, a + 1e-10 * d])
    Q, kept = gram_schmidt(V, return_kept=True)
    # a + 2b is dependent (residual ~eps), the zero column is below atol; a + 1e-10 d keeps
    # a relative residual ~1e-10 > rtol = 1e-13 (kept; removed when rtol = 1e-8)
    assert kept.tolist() == [0, 1, 4, 5]
    assert orth_error(Q) < 10 * EPS
    assert gram_schmidt(V, rtol=1e-8, return_kept=True)[1].tolist() == [0, 1, 4]


def test_gram_schmidt_errors():
    with pytest.raises(ValueError, match="NaN"):
        gram_schmidt(np.full((4, 2), np.nan))
    with pytest.raises(ValueError, match="2-D"):
        gram_schmidt(np.ones(4))
    with pytest.raises(ValueError, match=r"product weights have shape \(3,\)"):
        gram_schmidt(np.eye(4), product=np.ones(3))


@pytest.mark.mpi
@pytest.mark.parametrize("cond", [1e2, 1e6, 1e12])
def test_cholqr_check_and_fallback(comm, cond):
    """One pass when nearly orthonormal, CholQR2 when moderately conditioned, TSQR beyond."""
    rng = np.random.default_rng(1)
    n, k = 500, 10
    U = np.linalg.qr(rng.standard_normal((n, k)))[0]
    V = (U * np.logspace(0, -np.log10(cond), k)) @ np.linalg.qr(rng.standard_normal((k, k)))[0]
    Q = gather_rows(cholqr(rows(V, comm, True), comm=comm), comm)
    assert orth_error(Q) < 20 * EPS
    np.testing.assert_allclose(Q @ (Q.T @ V), V, atol=1e-13)


@pytest.mark.mpi
@pytest.mark.parametrize("shape", [(7, 5), (200, 6)])
def test_tsqr(comm, shape):
    """Ranks with fewer rows than columns, and with none."""
    A = np.random.default_rng(2).standard_normal(shape)
    Q, R = tsqr(rows(A, comm, uneven=True), comm=comm)
    Qg = gather_rows(Q, comm)
    assert R.shape == (min(shape), shape[1]) and np.allclose(R, np.triu(R))
    np.testing.assert_allclose(Qg @ R, A, atol=1e-14 * np.abs(A).max() * 10)
    assert orth_error(Qg) < 20 * EPS
    np.testing.assert_allclose(np.abs(R), np.abs(np.linalg.qr(A)[1]), atol=1e-13)


@pytest.mark.mpi
def test_gram_gather_and_products(comm):
    n = 37
    rng = np.random.default_rng(3)
    X, Y = rng.standard_normal((n, 4)), rng.standard_normal((n, 3))
    off = offsets(n, comm.size, uneven=True)
    lo, hi = off[comm.rank], off[comm.rank + 1]
    np.testing.assert_allclose(gram(X[lo:hi], Y[lo:hi], comm), X.T @ Y, atol=1e-13)
    np.testing.assert_allclose(gram(X[lo:hi], None, comm), X.T @ X, atol=1e-13)
    np.testing.assert_array_equal(gather_rows(X[lo:hi], comm), X)
    g0 = gather_rows(X[lo:hi], comm, root=0)
    assert (g0 is None) == (comm.rank != 0)
    # a global sparse matrix with far-away couplings (remote rows from several ranks)
    M = sp.random(n, n, density=0.2, random_state=4, format="csr") + sp.eye(n)
    M = (M + M.T).tocsr()
    np.testing.assert_allclose(gather_rows(apply_product(M[lo:hi], X[lo:hi], comm), comm),
                               M @ X, atol=1e-13)
    np.testing.assert_allclose(apply_product(M[lo:hi], X[lo:hi, 0], comm), (M @ X[:, 0])[lo:hi],
                               atol=1e-13)
    w = np.arange(1.0, n + 1)
    np.testing.assert_allclose(apply_product(w[lo:hi], X[lo:hi], comm), (w[:, None] * X)[lo:hi])
    np.testing.assert_allclose(apply_product(lambda Z: 2 * Z, X[lo:hi], comm), 2 * X[lo:hi])
    blk = sp.eye(hi - lo) * 3
    np.testing.assert_allclose(apply_product(blk, X[lo:hi], comm), 3 * X[lo:hi])
    with pytest.raises(ValueError, match="product has shape"):
        apply_product(sp.eye(hi - lo + 1, n), X[lo:hi], comm)

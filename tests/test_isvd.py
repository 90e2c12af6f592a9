"""rom.linalg.IncrementalSVD (Brand): agreement with the batch SVD at 1/2/3 ranks,
dependent columns, rank cap, inner products, re-orthonormalization and input errors."""
from __future__ import annotations

import numpy as np
import pytest
from _rowblocks import matrix, offsets, rows

from rom.linalg import IncrementalSVD, gather_rows, pod

EPS = np.finfo(float).eps


@pytest.mark.mpi
@pytest.mark.parametrize("uneven", [False, True])
def test_agrees_with_batch_svd(comm, uneven):
    s = 0.7 ** np.arange(20)
    A = matrix(300, s)
    isvd = IncrementalSVD(comm)
    assert isvd.add_many(rows(A, comm, uneven)) == 20 and isvd.skipped == []
    np.testing.assert_allclose(isvd.singular_values, np.linalg.svd(A, compute_uv=False),
                               rtol=1e-10)
    U = gather_rows(isvd.modes, comm)
    np.testing.assert_allclose(U.T @ U, np.eye(20), atol=50 * EPS)
    np.testing.assert_allclose((U * isvd.singular_values) @ isvd.right_vectors.T, A,
                               atol=1e-13)
    # same sign convention as pod: the modes themselves agree (and at any rank count)
    ref = pod(A, method="tsqr", rtol=0.0)
    np.testing.assert_allclose(U, ref.modes, atol=1e-9)
    np.testing.assert_allclose(isvd.right_vectors, ref.right_vectors, atol=1e-9)


@pytest.mark.mpi
def test_skips_dependent_columns(comm):
    rng = np.random.default_rng(1)
    B = rng.standard_normal((200, 5))
    A = np.column_stack([B, B @ rng.standard_normal((5, 4)), np.zeros(200), 2 * B[:, 0]])
    isvd = IncrementalSVD(comm, tol=1e-10)
    added = [isvd.add(col) for col in rows(A, comm, True).T]
    assert added == [True] * 5 + [False] * 6 and isvd.skipped == list(range(5, 11))
    assert isvd.rank == 5 and isvd.right_vectors.shape == (11, 5)
    # skipped columns still update S and V: the factorization reproduces every column
    U = gather_rows(isvd.modes, comm)
    np.testing.assert_allclose((U * isvd.singular_values) @ isvd.right_vectors.T, A,
                               atol=1e-12 * np.abs(A).max())
    np.testing.assert_allclose(isvd.singular_values, np.linalg.svd(A, compute_uv=False)[:5],
                               rtol=1e-10)


def test_first_column_zero_and_max_rank():
    isvd = IncrementalSVD(max_rank=3)
    assert not isvd.add(np.zeros(50))
    A = matrix(50, 0.5 ** np.arange(8), seed=2)
    isvd.add_many(A)
    assert isvd.rank == 3 and isvd.right_vectors.shape == (9, 3)
    s = np.linalg.svd(A, compute_uv=False)
    # truncated incremental SVD is approximate: the kept values are close to the leading ones
    np.testing.assert_allclose(isvd.singular_values, s[:3], rtol=1e-2)


@pytest.mark.mpi
def test_product_weights(comm):
    n = 150
    A = matrix(n, 0.6 ** np.arange(10), seed=3)
    w = np.linspace(1.0, 3.0, n)
    off = offsets(n, comm.size, True)
    lo, hi = off[comm.rank], off[comm.rank + 1]
    isvd = IncrementalSVD(comm, product=w[lo:hi])
    isvd.add_many(A[lo:hi])
    U = gather_rows(isvd.modes, comm)
    np.testing.assert_allclose(U.T @ (w[:, None] * U), np.eye(10), atol=50 * EPS)
    np.testing.assert_allclose(isvd.singular_values,
                               np.linalg.svd(np.sqrt(w)[:, None] * A, compute_uv=False), rtol=1e-10)


def test_periodic_reorthonormalization_keeps_factorization():
    A = matrix(400, 0.9 ** np.arange(60), seed=4)
    isvd = IncrementalSVD(check_every=7, orth_tol=0.0)      # force re-orthonormalization
    isvd.add_many(A)
    U = isvd.modes
    assert isvd.check_orthogonality() < 50 * EPS
    np.testing.assert_allclose(U.T @ U, np.eye(60), atol=50 * EPS)
    np.testing.assert_allclose((U * isvd.singular_values) @ isvd.right_vectors.T, A, atol=1e-12)


def test_errors():
    isvd = IncrementalSVD()
    isvd.add(np.ones(10))
    with pytest.raises(ValueError, match="column has 9 local rows, expected 10"):
        isvd.add(np.ones(9))
    bad = np.ones(10)
    bad[4] = np.nan
    with pytest.raises(ValueError, match="column 1 contains NaN/inf at local row 4"):
        isvd.add(bad)
    with pytest.raises(ValueError, match="tol"):
        IncrementalSVD(tol=-1.0)


def test_from_factors_then_add_is_one_update_of_the_same_svd():
    """Starting from a thin SVD and adding a column gives the SVD of [U S, x] (what
    enrichment does with a POD basis), without re-adding the r old columns."""
    rng = np.random.default_rng(3)
    X = rng.standard_normal((300, 12)) @ np.diag(0.5 ** np.arange(12))
    U, S, _ = np.linalg.svd(X, full_matrices=False)
    x = rng.standard_normal(300)
    inc = IncrementalSVD.from_factors(U, S)
    assert inc.n_columns == 12
    inc.add(x)
    ref = np.linalg.svd(np.column_stack([U * S, x]), compute_uv=False)
    np.testing.assert_allclose(inc.singular_values, ref, rtol=1e-12)
    np.testing.assert_allclose(inc.modes.T @ inc.modes, np.eye(13), atol=1e-13)
    recon = inc.modes @ np.diag(inc.singular_values) @ inc.right_vectors.T
    np.testing.assert_allclose(recon, np.column_stack([U * S, x]), atol=1e-12)
    with pytest.raises(ValueError, match="do not match"):
        IncrementalSVD.from_factors(U, S[:3])

"""DEIM, Q-DEIM and EIM (rom.hyper.deim): reference values, exact interpolation on the span,
agreement with the serial pivoted QR, error-bound factor, and rank-count independence."""
from __future__ import annotations

import itertools

import numpy as np
import pytest
import scipy.linalg as sla

from rom.hyper import deim, eim, interpolation, qdeim
from rom.parallel import even_split

# A basis whose serial pivoted-QR (Q-DEIM) points differ from those of a plain tournament of
# local pivoted QRs over rows [0, 4) and [4, 8) (found by search; every pivot choice is
# decided by a margin above 5 %, so this is not a tie). Serial: [4, 7, 1]; tournament: [4, 7, 3].
TOURNAMENT_COUNTEREXAMPLE = np.array([[4, 2, -3], [-2, 2, 2], [1, -1, 3], [1, -3, 1],
                                      [3, 4, -4], [-4, 0, 1], [-3, 0, 0], [-2, 2, -4]], float)


def smooth_family(n_points: int = 400, n_params: int = 60) -> np.ndarray:
    """(n_points, n_params) snapshots f(x; mu) = exp(-mu x) sin(pi (1 + mu) x) on [0, 1]."""
    x = np.linspace(0, 1, n_points)[:, None]
    mu = np.linspace(0.5, 5.0, n_params)[None, :]
    return np.exp(-mu * x) * np.sin(np.pi * (1 + mu) * x)


def pod_basis(F: np.ndarray, n: int) -> np.ndarray:
    return np.linalg.svd(F, full_matrices=False)[0][:, :n]


def scipy_qdeim(U: np.ndarray) -> np.ndarray:
    return sla.qr(U.T, pivoting=True, mode="r")[1][:U.shape[1]]


def tournament(U: np.ndarray, split: np.ndarray) -> np.ndarray:
    """Plain tournament: n candidates per block by local pivoted QR, then a QR of the candidates."""
    cands = np.concatenate([lo + scipy_qdeim(U[lo:hi]) for lo, hi in itertools.pairwise(split)])
    return cands[scipy_qdeim(U[cands])]


def splits(n: int, size: int) -> list[np.ndarray]:
    out = [even_split(n, size)]
    if size > 1:
        out.append(np.concatenate([[0, 0], np.linspace(0, n, size).astype(int)[1:]]))
    return out


def test_qdeim_identity_reference():
    assert qdeim(np.eye(2)).tolist() == [0, 1]
    assert deim(np.eye(2)).tolist() == [0, 1]


@pytest.mark.parametrize("method", [deim, qdeim])
def test_interpolation_exact_on_span(method, rng):
    U = pod_basis(smooth_family(), 10)
    interp = method(U, full_output=True)
    assert len(set(interp.indices.tolist())) == 10
    f = U @ rng.standard_normal(10)
    np.testing.assert_allclose(interp.interpolate(U, f[interp.indices]), f,
                               atol=1e-12 * np.abs(f).max())
    M = interp.matrix(U)                                 # U (P^T U)^{-1}
    np.testing.assert_allclose(M[interp.indices], np.eye(10), atol=1e-12)


@pytest.mark.parametrize("method", [deim, qdeim])
def test_error_bound_factor_moderate_and_valid(method):
    F = smooth_family()
    U = pod_basis(F[:, ::2], 12)                         # train on half the parameters
    interp = method(U, full_output=True)
    assert 1.0 <= interp.error_factor < 50.0            # moderate on a smooth family
    for f in F[:, 1::2].T:                               # the bound holds off the training set
        err = np.linalg.norm(f - interp.interpolate(U, f[interp.indices]))
        best = np.linalg.norm(f - U @ (U.T @ f))
        assert err <= interp.error_factor * best * (1 + 1e-8) + 1e-14


def test_qdeim_equals_scipy_pivoted_qr(rng):
    for U in (pod_basis(smooth_family(), 15), np.linalg.qr(rng.standard_normal((300, 20)))[0],
              TOURNAMENT_COUNTEREXAMPLE):
        assert qdeim(U).tolist() == scipy_qdeim(U).tolist()


def test_plain_tournament_is_not_the_serial_answer():
    """Why rom.hyper.qdeim does not use a plain tournament (docs/hyper.md)."""
    U = TOURNAMENT_COUNTEREXAMPLE
    assert scipy_qdeim(U).tolist() == [4, 7, 1]
    assert tournament(U, np.array([0, 4, 8])).tolist() == [4, 7, 3]


def test_deim_matches_textbook(rng):
    """Chaturantabut–Sorensen written out with dense global arrays."""
    U = pod_basis(smooth_family(), 8)
    p = [int(np.argmax(np.abs(U[:, 0])))]
    for l in range(1, 8):
        c = np.linalg.solve(U[p, :l], U[p, l])
        p.append(int(np.argmax(np.abs(U[:, l] - U[:, :l] @ c))))
    assert deim(U).tolist() == p


def test_interpolation_at_given_points():
    U = pod_basis(smooth_family(), 5)
    idx = np.array([10, 100, 200, 300, 390])
    it = interpolation(U, idx)
    np.testing.assert_allclose(it.PtU, U[idx])
    assert it.error_factor == pytest.approx(1 / np.linalg.svd(U[idx], compute_uv=False)[-1])


def test_eim_greedy_properties():
    F = smooth_family(300, 40)
    res = eim(F, tol=1e-10)
    n = res.indices.size
    assert np.allclose(np.triu(res.B, 1), 0) and np.all(np.diag(res.B) == 1.0)
    assert res.errors[-1] <= 1e-10 * np.abs(F).max()
    approx = res.interpolate(F[res.indices])
    np.testing.assert_allclose(approx, F, atol=1.01e-10 * np.abs(F).max())
    assert n == len(set(res.indices.tolist())) and len(set(res.snapshots.tolist())) == n
    assert eim(F, max_terms=3).indices.tolist() == res.indices[:3].tolist()


@pytest.mark.parametrize("method", [deim, qdeim])
def test_errors(method):
    U = pod_basis(smooth_family(), 4)
    with pytest.raises(ValueError, match="numerical rank 3 < 4"):
        method(np.column_stack([U[:, :3], U[:, 0] + U[:, 1]]))
    bad = U.copy()
    bad[7, 2] = np.nan
    with pytest.raises(ValueError, match=r"U contains nan at \(row 7, column 2\)"):
        method(bad)
    with pytest.raises(ValueError, match="is the basis transposed"):
        method(U.T)
    with pytest.raises(ValueError, match="2-D"):
        method(U[:, 0])


@pytest.mark.mpi
@pytest.mark.parametrize("method", [deim, qdeim])
def test_distributed_equals_serial(comm, method):
    U = pod_basis(smooth_family(), 12)
    ref = method(U, full_output=True)
    for split in splits(U.shape[0], comm.size):
        lo, hi = split[comm.rank], split[comm.rank + 1]
        got = method(U[lo:hi], comm=comm, full_output=True)
        assert got.indices.tolist() == ref.indices.tolist()
        np.testing.assert_array_equal(got.PtU, ref.PtU)
        assert got.error_factor == pytest.approx(ref.error_factor, rel=1e-13)
        np.testing.assert_allclose(got.matrix(U[lo:hi]), ref.matrix(U)[lo:hi], atol=1e-12)


@pytest.mark.mpi
def test_distributed_qdeim_on_the_tournament_counterexample(comm):
    U = TOURNAMENT_COUNTEREXAMPLE
    split = np.array([0, 4, 8]) if comm.size == 2 else even_split(8, comm.size)
    lo, hi = split[comm.rank], split[comm.rank + 1]
    assert qdeim(U[lo:hi], comm=comm).tolist() == [4, 7, 1]


@pytest.mark.mpi
def test_distributed_eim_equals_serial(comm):
    F = smooth_family(300, 40)
    ref = eim(F, tol=1e-9)
    for split in splits(F.shape[0], comm.size):
        lo, hi = split[comm.rank], split[comm.rank + 1]
        got = eim(F[lo:hi], tol=1e-9, comm=comm)
        assert got.indices.tolist() == ref.indices.tolist()
        assert got.snapshots.tolist() == ref.snapshots.tolist()
        np.testing.assert_allclose(got.basis, ref.basis[lo:hi], rtol=1e-12, atol=1e-13)
        np.testing.assert_allclose(got.errors, ref.errors, rtol=1e-12)

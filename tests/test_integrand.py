"""ECM integrand builders (rom.hyper.integrand): Voigt/engineering-shear convention, blocks,
compression without forming G, and ECM from the fields with the exact stopping test."""
from __future__ import annotations

import numpy as np
import pytest

from rom.hyper import (
    compress_integrand,
    ecm,
    ecm_fields,
    integrals,
    integrand_columns,
    integrand_matrix,
    point_dofs,
    quadrature_error,
    strains_from_B,
)
from rom.parallel import even_split


def tet_B(nodes: np.ndarray) -> np.ndarray:
    """(6, 12) B-matrix of a linear tetrahedron, Voigt xx yy zz yz xz xy, engineering shear."""
    grads = np.linalg.inv(np.column_stack([np.ones(4), nodes]))[1:].T   # (4, 3) dN_a/dx
    B = np.zeros((6, 12))
    for a, (bx, by, bz) in enumerate(grads):
        B[:, 3 * a:3 * a + 3] = [[bx, 0, 0], [0, by, 0], [0, 0, bz],
                                 [0, bz, by], [bz, 0, bx], [by, bx, 0]]
    return B


def voigt_to_tensor(v: np.ndarray, engineering: bool) -> np.ndarray:
    f = 0.5 if engineering else 1.0
    xx, yy, zz, yz, xz, xy = v
    return np.array([[xx, f * xy, f * xz], [f * xy, yy, f * yz], [f * xz, f * yz, zz]])


def fields(n_points: int = 800, n_snap: int = 12, n_modes: int = 5, seed: int = 0):
    """Smooth mode strains and saturating stresses at random points (same on every rank)."""
    rng = np.random.default_rng(seed)
    X = rng.random((n_points, 3))
    kv = rng.integers(0, 3, (n_modes, 6, 3)) * np.pi
    eps = 1e-3 * np.cos(np.einsum("ikd,gd->igk", kv, X) + rng.random((n_modes, 1, 6)))
    t = np.linspace(0.1, 1.5, n_snap)[:, None]                     # load factor of each snapshot
    a = t * rng.standard_normal(n_modes) + t**2 * rng.standard_normal(n_modes)
    e = np.einsum("si,igk->sgk", a, eps)
    eq = np.linalg.norm(e, axis=2, keepdims=True)
    sig = 2e11 * e / np.sqrt(1 + (eq / 1.5e-3) ** 2)               # Pa, saturating
    w = rng.random(n_points) / n_points                            # m^3
    return eps, sig, w


class CountingArray:
    """An array-like over stresses that records the size of every block read."""

    def __init__(self, a):
        self.a, self.shape, self.reads = a, a.shape, []

    def __getitem__(self, key):
        out = self.a[key]
        self.reads.append(out.shape[1])
        return out


def test_engineering_shear_convention():
    nodes = np.array([[0, 0, 0], [1, 0, 0], [0, 1, 0], [0, 0, 1.0]])
    B = tet_B(nodes)[None]                                           # one point
    gamma = 2e-3                                                     # u = (gamma y, 0, 0)
    modes = np.zeros((12, 1))
    modes[0::3, 0] = gamma * nodes[:, 1]
    eps = strains_from_B(B, np.arange(12)[None], modes)
    np.testing.assert_allclose(eps[0, 0], [0, 0, 0, 0, 0, gamma], atol=1e-15)  # gamma_xy
    sig = np.array([1e6, -2e6, 3e5, 4e5, -5e5, 6e5])[None, None]
    G = integrand_matrix(eps, sig)
    full = np.sum(voigt_to_tensor(sig[0, 0], False) * voigt_to_tensor(eps[0, 0], True))
    assert G[0, 0] == pytest.approx(full, rel=1e-14)                # sigma : eps


def test_strains_from_B_matches_point_loop(rng):
    n_el, q, n_dpe, n_dofs = 30, 4, 12, 120
    element_dofs = rng.integers(0, n_dofs, (n_el, n_dpe))
    dofs = point_dofs(element_dofs, q)
    assert dofs.shape == (n_el * q, n_dpe) and np.all(dofs[5] == element_dofs[1])
    B = rng.standard_normal((n_el * q, 6, n_dpe))
    modes = rng.standard_normal((n_dofs, 7))
    eps = strains_from_B(B, dofs, modes, block_bytes=4000)          # many blocks
    loop = np.stack([[B[g] @ modes[dofs[g], i] for g in range(n_el * q)] for i in range(7)])
    np.testing.assert_allclose(eps, loop, rtol=1e-13, atol=1e-15)
    with pytest.raises(ValueError, match="out of range"):
        strains_from_B(B, dofs + n_dofs, modes)


def test_integrand_matrix_definition_and_blocks():
    eps, sig, _ = fields(300)
    G = integrand_matrix(eps, sig)
    ref = np.einsum("sgk,igk->sig", sig, eps).reshape(-1, 300)      # row s * n_modes + i
    np.testing.assert_allclose(G, ref, rtol=1e-13, atol=1e-13 * np.abs(ref).max())
    np.testing.assert_array_equal(integrand_matrix(eps, sig, block_bytes=1), G)
    counting = CountingArray(sig)
    integrand_matrix(eps, counting, block_bytes=100_000)
    assert max(counting.reads) < 300 and sum(counting.reads) == 300


def test_compress_integrand_is_an_isometry_up_to_tol(rng):
    eps, sig, w = fields(1500, n_snap=20, n_modes=6)
    G = integrand_matrix(eps, sig)
    for tol in (1e-3, 1e-6):
        comp = compress_integrand(eps, CountingArray(sig), tol=tol, weights=w, block_bytes=200_000)
        np.testing.assert_allclose(comp.integrals, G @ w, rtol=1e-12)
        P = comp.row_basis.T @ np.kron(comp.stress_basis.T, np.eye(6))   # (k, m), rows = P
        np.testing.assert_allclose(P @ P.T, np.eye(comp.rank), atol=1e-12)
        np.testing.assert_allclose(comp.matrix, P @ G, atol=1e-10 * np.abs(comp.matrix).max())
        np.testing.assert_allclose(comp.project(G[:, 7]), P @ G[:, 7], rtol=1e-10, atol=1e-6)
        tail = np.linalg.norm(G - P.T @ (P @ G), axis=0)                   # what A misses
        norms = np.linalg.norm(G, axis=0)                                  # an upper bound,
        assert np.all(comp.tail >= tail * (1 - 1e-9))                     # tight to the
        assert np.all(comp.tail <= tail + 1e-6 * norms)                   # rounding margin
        V = rng.standard_normal((1500, 5))
        err = np.linalg.norm(G @ V, axis=0) - np.linalg.norm(comp.matrix @ V, axis=0)
        assert np.all(np.abs(err) <= 3 * tol * np.linalg.norm(G) * np.linalg.norm(V, axis=0))
        assert comp.rank < G.shape[0] and comp.stress_rank <= 20
    recomputed = compress_integrand(eps, sig, tol=1e-6, cache_bytes=0, block_bytes=200_000)
    np.testing.assert_allclose(recomputed.matrix, comp.matrix, rtol=1e-12,
                               atol=1e-12 * np.abs(comp.matrix).max())


def test_sampled_grams_still_give_an_exact_compression_and_the_same_greedy():
    eps, sig, w = fields(1500, n_snap=20, n_modes=6)
    G = integrand_matrix(eps, sig)
    comp = compress_integrand(eps, sig, tol=1e-4, sample=100)        # Grams on 100 points
    P = comp.row_basis.T @ np.kron(comp.stress_basis.T, np.eye(6))
    np.testing.assert_allclose(P @ P.T, np.eye(comp.rank), atol=1e-12)
    np.testing.assert_allclose(comp.matrix, P @ G, atol=1e-10 * np.abs(comp.matrix).max())
    ref_idx, ref_x = ecm(G, w, tol=1e-6)
    idx, x = ecm_fields(eps, sig, w, tol=1e-6, sample=100)
    assert idx.tolist() == ref_idx.tolist()
    np.testing.assert_allclose(x, ref_x, rtol=1e-8, atol=1e-12 * ref_x.max())


@pytest.mark.parametrize("tol", [1e-3, 1e-6])
def test_ecm_fields_meets_the_true_tolerance(tol):
    eps, sig, w = fields(2000, n_snap=20, n_modes=6)
    G = integrand_matrix(eps, sig)
    idx, x, info = ecm_fields(eps, sig, w, tol=tol, return_info=True)
    assert quadrature_error(G, w, idx, x) <= tol
    assert info["rank"] < G.shape[0]
    full_idx, full_x = ecm(G, w, tol=tol)                            # greedy on the full G
    assert idx.tolist() == full_idx.tolist()                         # the same NNOMP
    np.testing.assert_allclose(x, full_x, rtol=1e-9, atol=1e-9 * full_x.max())


def test_integrand_rows_correlations_and_coarse_ecm_fields(rng):
    from rom.hyper import integrand_correlations, integrand_rows
    eps, sig, w = fields(1500, n_snap=20, n_modes=6)
    G = integrand_matrix(eps, sig)
    U = rng.standard_normal((3, G.shape[0]))
    np.testing.assert_allclose(integrand_rows(eps, sig, U, block_bytes=50_000), U @ G,
                               rtol=1e-11, atol=1e-11 * np.abs(U @ G).max())
    for n in (5, 1500):                           # gathered fields / one streaming pass
        idx = np.sort(rng.choice(1500, n, replace=False))
        np.testing.assert_allclose(integrand_correlations(eps, sig, U[0], idx),
                                   (U[0] @ G)[idx], rtol=1e-11,
                                   atol=1e-11 * np.abs(U[0] @ G).max())
    ref_idx, ref_x = ecm(G, w, tol=1e-6)
    # rows far too coarse to see the residual: the same NNOMP, nothing stops it early
    idx, x, info = ecm_fields(eps, sig, w, tol=1e-6, compress_tol=0.3, return_info=True)
    assert idx.tolist() == ref_idx.tolist() and info["error"] <= 1e-6
    assert max(info["candidates"]) > 100
    np.testing.assert_allclose(x, ref_x, rtol=1e-8, atol=1e-12 * ref_x.max())


@pytest.mark.parametrize("batch", [1, 8])
def test_ecm_fields_without_compression_is_the_same_greedy(batch):
    """compress=False: every scan is one exact pass; same points and weights as the
    greedy on the formed G, cold and warm-started."""
    eps, sig, w = fields(1500, n_snap=20, n_modes=6)
    G = integrand_matrix(eps, sig)
    warm, _ = ecm_fields(eps, sig[:8], w, tol=1e-4)
    for ws in (None, warm):
        ref_idx, ref_x = ecm(G, w, tol=1e-6, batch=batch, warm_start=ws)
        idx, x, info = ecm_fields(eps, sig, w, tol=1e-6, batch=batch, warm_start=ws,
                                  compress=False, return_info=True, block_bytes=60_000)
        assert info["rank"] == 0 and info["error"] <= 1e-6
        assert idx.tolist() == ref_idx.tolist()
        np.testing.assert_allclose(x, ref_x, rtol=1e-8, atol=1e-12 * ref_x.max())


def test_ecm_fields_warm_start_and_imposed():
    eps, sig, w = fields(1000)
    idx0, _ = ecm_fields(eps, sig[:6], w, tol=1e-4)
    idx, x = ecm_fields(eps, sig, w, tol=1e-4, warm_start=idx0, imposed=[0, 999])
    assert set(idx0) <= set(idx) and {0, 999} <= set(idx)
    assert np.all(x[np.isin(idx, [0, 999])] == 0)
    assert quadrature_error(integrand_matrix(eps, sig), w, idx, x) <= 1e-4


@pytest.mark.parametrize("call, match", [
    (lambda e, s, w: integrand_matrix(e, s[:, :-1]), "must share"),
    (lambda e, s, w: integrals(e, s, w[:-1]), "weights has 299 entries"),
    (lambda e, s, w: integrand_matrix(e[0], s), "strains must be a 3-D array"),
    (lambda e, s, w: compress_integrand(e, s, tol=0), r"tol must be in \(0, 1\)"),
])
def test_input_errors(call, match):
    eps, sig, w = fields(300)
    with pytest.raises(ValueError, match=match):
        call(eps, sig, w)


def local(split, rank, eps, sig, w):
    lo, hi = split[rank], split[rank + 1]
    return eps[:, lo:hi], sig[:, lo:hi], w[lo:hi]


def splits(n, size):
    out = [even_split(n, size)]
    if size > 1:
        out.append(np.concatenate([[0, 0], np.linspace(0, n, size).astype(int)[1:]]))
    return out


@pytest.mark.mpi
def test_distributed_integrals_columns_and_compression(comm):
    eps, sig, w = fields(900, n_snap=10, n_modes=4)
    G = integrand_matrix(eps, sig)
    ref = compress_integrand(eps, sig, tol=1e-6)
    for split in splits(900, comm.size):
        e, s, wl = local(split, comm.rank, eps, sig, w)
        np.testing.assert_allclose(integrals(e, s, wl, comm=comm), G @ w, rtol=1e-12)
        J = np.array([899, 0, 450, 17])
        np.testing.assert_array_equal(integrand_columns(e, s, J, comm=comm), G[:, J])
        comp = compress_integrand(e, s, tol=1e-6, comm=comm)
        lo, hi = split[comm.rank], split[comm.rank + 1]
        # same compressed geometry (the basis is defined up to a rotation): compare Gram blocks
        np.testing.assert_allclose(comp.matrix.T @ comp.matrix,
                                   ref.matrix[:, lo:hi].T @ ref.matrix[:, lo:hi],
                                   rtol=1e-9, atol=1e-9 * np.abs(ref.matrix).max() ** 2)


@pytest.mark.mpi
def test_distributed_ecm_fields_equals_serial(comm):
    eps, sig, w = fields(1200)
    ref_idx, ref_x = ecm_fields(eps, sig, w, tol=1e-6, sample=300)
    for split in splits(1200, comm.size):
        idx, x = ecm_fields(*local(split, comm.rank, eps, sig, w), tol=1e-6, comm=comm,
                            sample=300)
        assert idx.tolist() == ref_idx.tolist()
        idx2, x2 = ecm_fields(*local(split, comm.rank, eps, sig, w), tol=1e-6, comm=comm,
                              compress=False)
        assert idx2.tolist() == ref_idx.tolist()
        np.testing.assert_allclose(x2, ref_x, rtol=1e-10, atol=1e-10 * ref_x.max())
        # the weights solve a NNLS on the true columns: determined to cond(G_S) * eps (~1e-11
        # here), the integrals being sums whose rounding depends on the split
        np.testing.assert_allclose(x, ref_x, rtol=1e-10, atol=1e-10 * ref_x.max())


@pytest.mark.mpi
def test_nan_in_stresses_reported_with_global_point(comm):
    eps, sig, w = fields(300)
    sig = sig.copy()
    sig[3, 250, 4] = np.nan
    split = even_split(300, comm.size)
    with pytest.raises(ValueError, match=r"stresses contains nan at \(snapshot 3, point 250"):
        compress_integrand(*local(split, comm.rank, eps, sig, w)[:2], tol=1e-4, comm=comm)

"""ECM integrand matrices from mechanical fields, built in blocks of points.

The internal virtual work of a reduced model with displacement modes ``phi_i`` is
``sum_g w_g sigma(x_g) : eps(phi_i)(x_g)``; the ECM integrand matrix is

    G[s * n_modes + i, g] = sigma_s(x_g) : eps(phi_i)(x_g)      (units: Pa = J/m^3)

for stress snapshots ``sigma_s`` and modes ``phi_i`` (row index: snapshot-major).

Conventions
-----------
Voigt order ``xx, yy, zz, yz, xz, xy`` (3D, 6 components; in 2D any order shared by
both fields, e.g. ``xx, yy, xy``). **Strains use the engineering shear**
``gamma_ij = 2 eps_ij`` and stresses the plain ``sigma_ij``, so that
``sigma : eps = sum_k sigma_k eps_k`` (the usual B-matrix convention).

Shapes: ``strains`` (n_modes, n_points, n_comp), ``stresses`` (n_snapshots, n_points,
n_comp), ``weights`` (n_points,), with the points of this rank (global order over
ranks). ``stresses`` may be any array-like sliced along the point axis (numpy array,
``np.memmap``, h5py dataset): only one block of points is read at a time.

Memory. :func:`integrand_matrix` needs its output (m x n_points doubles, m =
n_snapshots n_modes) plus one block of ``block_bytes``.
:func:`compress_integrand` never forms G: it keeps the stress Gram (n_s^2), the Gram
of the stress-compressed rows ((r n_modes)^2), its output (k x n_points) and one
block (about ``block_bytes``), where r is the stress POD rank and k the final rank.
"""
from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
from mpi4py import MPI

from ..parallel import allreduce_sum, as_comm, rank0_print
from ._common import (
    check_indices,
    check_tol,
    eig_desc,
    few_points,
    float_array,
    nonfinite_message,
    offsets_of,
    raise_collective,
    truncation_rank,
)
from .ecm import TrueIntegrands, ecm

__all__ = [
    "CompressedIntegrand",
    "compress_integrand",
    "ecm_fields",
    "integrals",
    "integrand_columns",
    "integrand_correlations",
    "integrand_matrix",
    "integrand_rows",
    "point_dofs",
    "strains_from_B",
]

#: default size of one block of points (bytes of the largest temporary)
BLOCK_BYTES = 64 * 2**20


class _Ticker:
    """Progress of block passes on rank 0, at most one line every ``every`` seconds."""

    def __init__(self, comm: MPI.Comm, total: int, label: str, every: float | None):
        self.comm, self.total, self.label, self.every = comm, total, label, every
        self.count, self.t0 = 0, time.perf_counter()
        self.last = self.t0

    def update(self, n: int = 1) -> None:
        self.count += n
        now = time.perf_counter()
        if self.every and now - self.last > self.every:
            self.last = now
            rank0_print(self.comm, f"{self.label}: block {self.count}/{self.total} "
                                   f"(3 passes), {now - self.t0:.1f} s", file=sys.stderr)


def _block_ranges(n: int, bytes_per_point: int, block_bytes: int):
    step = max(1, int(block_bytes) // max(1, int(bytes_per_point)))
    return [(g, min(g + step, n)) for g in range(0, n, step)]


def point_dofs(element_dofs: np.ndarray, points_per_element: int) -> np.ndarray:
    """Dofs of each integration point, ``(n_elements * q, n_dpe)``, for q points per element.

    Points are numbered element by element (points of element e are ``e*q ... e*q+q-1``).
    """
    return np.repeat(np.asarray(element_dofs), int(points_per_element), axis=0)


def strains_from_B(B: np.ndarray, dofs: np.ndarray, modes: np.ndarray, *,
                   block_bytes: int = BLOCK_BYTES) -> np.ndarray:
    """Strains of the modes at the integration points, ``eps(phi_i)(x_g) = B_g phi_i[dofs_g]``.

    Parameters
    ----------
    B : (n_points, n_comp, n_dpe) strain-displacement matrices at the points (1/m),
        engineering shear (see module doc)
    dofs : (n_points, n_dpe) integer row indices into ``modes`` of the element dofs of
        each point (:func:`point_dofs` expands an element connectivity)
    modes : (n_dofs, n_modes) displacement modes (m), rows numbered like ``dofs`` (for
        a distributed mesh: local + ghost dofs)

    Returns
    -------
    (n_modes, n_points, n_comp) strains (dimensionless)
    """
    B = float_array(B, "B", 3)
    modes = float_array(modes, "modes", 2)
    dofs = np.asarray(dofs)
    if dofs.shape != (B.shape[0], B.shape[2]) or not np.issubdtype(dofs.dtype, np.integer):
        raise ValueError(f"dofs must be integers of shape (n_points, n_dpe) = "
                         f"{(B.shape[0], B.shape[2])} to match B {B.shape}, got {dofs.dtype} "
                         f"{dofs.shape}")
    if dofs.size and (dofs.min() < 0 or dofs.max() >= modes.shape[0]):
        bad = int(np.flatnonzero((dofs.ravel() < 0) | (dofs.ravel() >= modes.shape[0]))[0])
        raise ValueError(f"dofs[{np.unravel_index(bad, dofs.shape)}] = {dofs.ravel()[bad]} is "
                         f"out of range [0, {modes.shape[0]}) (rows of modes)")
    for name, arr, axes in (("B", B, ("point", "component", "dof")),
                            ("modes", modes, ("dof", "mode"))):
        msg = nonfinite_message(arr, name, axes)
        if msg:
            raise ValueError(msg)
    n_pts, n_comp, n_dpe = B.shape
    eps = np.empty((modes.shape[1], n_pts, n_comp))
    for g0, g1 in _block_ranges(n_pts, 8 * modes.shape[1] * (n_dpe + n_comp), block_bytes):
        M = modes[dofs[g0:g1]]                                   # (p, n_dpe, n_modes)
        eps[:, g0:g1, :] = np.einsum("gkd,gdi->igk", B[g0:g1], M, optimize=True)
    return eps


def _check_fields(strains: Any, stresses: Any) -> tuple[np.ndarray, Any]:
    strains = float_array(strains, "strains", 3)
    if len(getattr(stresses, "shape", ())) != 3:
        raise ValueError(f"stresses must be (n_snapshots, n_points, n_comp), got shape "
                         f"{getattr(stresses, 'shape', None)}")
    if tuple(stresses.shape[1:]) != strains.shape[1:]:
        raise ValueError(f"stresses {tuple(stresses.shape)} and strains {strains.shape} must "
                         f"share (n_points, n_comp): (n_snapshots, n_points, n_comp) and "
                         f"(n_modes, n_points, n_comp)")
    msg = nonfinite_message(strains, "strains", ("mode", "point", "component"))
    if msg:
        raise ValueError(msg)
    return strains, stresses


def _check_weights(weights: Any, n_pts: int) -> np.ndarray:
    w = float_array(weights, "weights", 1)
    if w.shape[0] != n_pts:
        raise ValueError(f"weights has {w.shape[0]} entries but the fields have {n_pts} "
                         f"points on this rank")
    msg = nonfinite_message(w, "weights", ("point",))
    if msg:
        raise ValueError(msg)
    return w


def _stress_block(stresses, g0: int, g1: int, check: bool = False, offset: int = 0
                  ) -> np.ndarray:
    """Stresses of local points g0:g1 as float64 (a view for a float64 array), optionally checked.

    ``offset`` is the global index of local point 0 (for the error message).
    """
    blk = np.asarray(stresses[:, g0:g1, :], dtype=np.float64)
    if check:
        msg = nonfinite_message(blk, "stresses", ("snapshot", "point", "component"),
                                (0, offset + g0, 0))
        if msg:
            raise ValueError(msg)
    return blk


def _products(sig: np.ndarray, eps: np.ndarray) -> np.ndarray:
    """``out[s, i, g] = sum_k sig[s, g, k] eps[i, g, k]``: (n_s, n_modes, p)."""
    return np.matmul(sig.transpose(1, 0, 2), eps.transpose(1, 2, 0)).transpose(1, 2, 0)


def integrand_matrix(strains: np.ndarray, stresses: Any, *, block_bytes: int = BLOCK_BYTES,
                     out: np.ndarray | None = None) -> np.ndarray:
    """The full integrand matrix of this rank's points, built block by block.

    Parameters
    ----------
    strains : (n_modes, n_points, n_comp) mode strains (engineering shear)
    stresses : (n_snapshots, n_points, n_comp) stress snapshots (Pa), array-like
    block_bytes : bound on the temporary of one block
    out : optional (n_snapshots * n_modes, n_points) float64 array to fill

    Returns
    -------
    G : (n_snapshots * n_modes, n_points), ``G[s * n_modes + i, g] = sigma_s : eps_i`` (Pa).
    Memory: the output (8 m n_points bytes) plus ``block_bytes``.
    """
    strains, stresses = _check_fields(strains, stresses)
    n_modes, n_pts, n_comp = strains.shape
    n_s = stresses.shape[0]
    if out is None:
        out = np.empty((n_s * n_modes, n_pts))
    elif out.shape != (n_s * n_modes, n_pts):
        raise ValueError(f"out has shape {out.shape}, expected {(n_s * n_modes, n_pts)}")
    for g0, g1 in _block_ranges(n_pts, 8 * (2 * n_s * n_modes + n_s * n_comp), block_bytes):
        out[:, g0:g1] = _products(_stress_block(stresses, g0, g1, check=True),
                                  strains[:, g0:g1]).reshape(n_s * n_modes, g1 - g0)
    return out


def integrals(strains: np.ndarray, stresses: Any, weights: np.ndarray, *,
              comm: MPI.Comm | None = None, block_bytes: int = BLOCK_BYTES) -> np.ndarray:
    """``G @ weights`` over all ranks without forming G (collective).

    Returns
    -------
    (n_snapshots * n_modes,) integrals (Pa times the unit of the weights, e.g. J), the
    same on every rank. Cost: one GEMM per block, ``2 m n_comp n_points`` flops.
    """
    comm = as_comm(comm)
    strains, stresses = _check_fields(strains, stresses)
    w = _check_weights(weights, strains.shape[1])
    n_modes, n_pts, n_comp = strains.shape
    n_s = stresses.shape[0]
    b = np.zeros((n_s, n_modes))
    msg, off = None, int(offsets_of(n_pts, comm)[comm.rank])
    try:
        for g0, g1 in _block_ranges(n_pts, 8 * (n_s + n_modes) * n_comp, block_bytes):
            sig = _stress_block(stresses, g0, g1, True, off).reshape(n_s, -1)
            we = (strains[:, g0:g1] * w[g0:g1, None]).reshape(n_modes, -1)
            b += sig @ we.T
    except ValueError as exc:
        msg = str(exc)
    raise_collective(msg, comm)
    return allreduce_sum(b.ravel(), comm)


def integrand_columns(strains: np.ndarray, stresses: Any, indices: np.ndarray, *,
                      comm: MPI.Comm | None = None) -> np.ndarray:
    """True integrand columns at global points, on every rank (collective).

    Returns
    -------
    (n_snapshots * n_modes, len(indices)), columns in the order of ``indices``.
    """
    comm = as_comm(comm)
    n_modes, n_pts, _ = strains.shape
    n_s = stresses.shape[0]
    offsets = offsets_of(n_pts, comm)
    idx = check_indices(indices, int(offsets[-1]), "indices")
    lo, hi = int(offsets[comm.rank]), int(offsets[comm.rank + 1])
    mine = np.flatnonzero((idx >= lo) & (idx < hi))
    out = np.zeros((n_s * n_modes, idx.size))
    if mine.size:
        loc = idx[mine] - lo
        order = np.argsort(loc)                   # array-likes (h5py) want increasing indices
        sig = np.asarray(stresses[:, loc[order], :], dtype=np.float64)
        cols = _products(sig, strains[:, loc[order]]).reshape(n_s * n_modes, -1)
        out[:, mine[order]] = cols
    return allreduce_sum(out, comm)


def integrand_rows(strains: np.ndarray, stresses: Any, U: np.ndarray, *,
                   block_bytes: int = BLOCK_BYTES) -> np.ndarray:
    """Combinations of integrand rows at this rank's points, ``U @ G``, without forming G.

    Parameters
    ----------
    strains, stresses : see :func:`integrand_matrix`
    U : (a, n_snapshots * n_modes) coefficients over the rows of G

    Returns
    -------
    (a, n_points): ``sum_(s,i) U[., s n_modes + i] sigma_s : eps_i`` (local, not collective).
    Cost: ``2 a n_s n_modes n_comp`` flops per point (one GEMM per block), one pass over the
    stresses.
    """
    n_modes, n_pts, n_comp = strains.shape
    n_s = stresses.shape[0]
    U = np.atleast_2d(np.asarray(U, dtype=float))
    a = U.shape[0]
    # Z[(a, i), g, k] = sum_s U[a, s, i] sigma[s, g, k] (one GEMM), then sum_(i,k) Z eps
    W = U.reshape(a, n_s, n_modes).transpose(0, 2, 1).reshape(a * n_modes, n_s)
    out = np.empty((a, n_pts))
    for g0, g1 in _block_ranges(n_pts, 8 * (n_s + 2 * a * n_modes) * n_comp, block_bytes):
        Z = W @ _stress_block(stresses, g0, g1).reshape(n_s, -1)
        Z = Z.reshape(a, n_modes, g1 - g0, n_comp) * strains[None, :, g0:g1]
        out[:, g0:g1] = Z.sum(axis=(1, 3))
    return out


def integrand_correlations(strains: np.ndarray, stresses: Any, r: np.ndarray,
                           idx: np.ndarray, *, block_bytes: int = BLOCK_BYTES) -> np.ndarray:
    """``(G^T r)[idx]`` at some of this rank's points, without forming G (local).

    Parameters
    ----------
    strains, stresses : see :func:`integrand_matrix`
    r : (n_snapshots * n_modes,) a combination of the rows of G (e.g. the ECM residual)
    idx : increasing local point indices

    Returns
    -------
    (len(idx),) values. Few points: their fields are gathered; many (more than 1/8 of the
    points): one streaming pass over all points (:func:`integrand_rows`), then picked.
    """
    idx = np.asarray(idx, dtype=np.int64)
    if not few_points(idx.size, strains.shape[1]):
        return integrand_rows(strains, stresses, r, block_bytes=block_bytes)[0, idx]
    sig = np.asarray(stresses[:, idx, :], dtype=np.float64)
    return integrand_rows(strains[:, idx], sig, r, block_bytes=block_bytes)[0]


@dataclass(frozen=True)
class CompressedIntegrand:
    """A POD-compressed integrand matrix: ``||G v|| ≈ ||matrix v||`` for every v.

    Attributes
    ----------
    matrix : (k, n_points) this rank's columns of the compressed matrix (Pa)
    stress_basis : (n_snapshots, r) orthonormal right factor of the stress snapshots
    row_basis : (r * n_modes, k) orthonormal basis of the kept rows
    stress_singular_values : all singular values of the stress snapshot matrix
    singular_values : all singular values of the stress-compressed integrand rows
    integrals : (n_snapshots * n_modes,) true integrals ``G w`` when weights were given
    tail : (n_points,) ``||g_g - P^T P g_g||``, the part of each true column the compressed
        matrix misses (P = ``row_basis^T (stress_basis^T kron I)``, orthonormal rows)
    """

    matrix: np.ndarray
    stress_basis: np.ndarray
    row_basis: np.ndarray
    stress_singular_values: np.ndarray
    singular_values: np.ndarray
    integrals: np.ndarray | None = None
    tail: np.ndarray | None = None

    @property
    def rank(self) -> int:
        return self.matrix.shape[0]

    def lift(self, v: np.ndarray) -> np.ndarray:
        """``P^T v``: compressed coordinates (k,) back to a vector over the rows of G."""
        r = self.stress_basis.shape[1]
        return (self.stress_basis @ (self.row_basis @ v).reshape(r, -1)).ravel()

    def project(self, r: np.ndarray) -> np.ndarray:
        """Compressed coordinates ``Q^T (V^T kron I) r`` of a vector r over the rows of G.

        ``matrix.T @ project(r)`` equals ``G.T @ r`` up to the truncations.
        """
        n_s = self.stress_basis.shape[0]
        return self.row_basis.T @ (self.stress_basis.T @ np.asarray(r).reshape(n_s, -1)).ravel()

    @property
    def stress_rank(self) -> int:
        return self.stress_basis.shape[1]


def compress_integrand(strains: np.ndarray, stresses: Any, *, tol: float,
                       stress_tol: float | None = None, comm: MPI.Comm | None = None,
                       weights: np.ndarray | None = None, block_bytes: int = BLOCK_BYTES,
                       cache_bytes: int = 2**30, sample: int | None = 20_000,
                       progress: float | None = None) -> CompressedIntegrand:
    """The POD-compressed ECM integrand matrix, formed in blocks without forming G (collective).

    (1) POD of the stress snapshots (method of snapshots, Gram n_s x n_s):
    ``sigma_s = sum_a V[s, a] sigma~_a``, keeping r terms at relative energy ``stress_tol``;
    since V has orthonormal columns, ``G = (V kron I) H`` with ``H[(a, i), g] = sigma~_a :
    eps_i`` and ``||G v|| = ||H v||``. (2) Gram of the rows of H ((r n_modes)^2), eigen-
    decomposition, k rows kept at relative energy ``tol``. (3) ``matrix = Q^T H``. The same
    pass as (1) computes the true column norms (for ``tail``) and, with ``weights``, the
    integrals. Both Grams use a strided sample of points when there are more than
    ``sample``: they only choose the rows; the result is exactly ``P G`` for the chosen
    orthonormal P, whatever the sample. Passes over the stresses: 2 (3 without sampling
    when H does not fit in ``cache_bytes``).

    Parameters
    ----------
    strains, stresses : see :func:`integrand_matrix`
    tol : relative energy tolerance of the row POD (second stage), in (0, 1)
    stress_tol : relative energy tolerance of the stress POD, default ``tol``
    comm : communicator over which the points are split
    weights : (n_points,) if given, the true integrals ``G w`` are computed in pass (1)
        too (attribute ``integrals``)
    block_bytes : bound on the per-block temporaries
    cache_bytes : keep H (8 r n_modes n_points bytes) when it is at most this large
    sample : build the two Gram matrices (which only choose the compressed rows) from about
        this many points, every ``P // sample``-th global point; ``None``: all points. The
        compressed matrix itself, its truncated norms and the integrals use every point.
    progress : seconds between progress lines on rank 0 (stderr); ``None`` silences

    Returns
    -------
    :class:`CompressedIntegrand`. Cost per rank: ``2 k r n_modes n_points`` (projection) +
    ``36 (n_s + n_modes) n_points`` (norms) + ``n_s^2 n_comp + (r n_modes)^2`` per sampled
    point (Grams) flops; memory see module doc.
    Energies below about ``eps * largest`` are not resolved by the Gram matrices, so the
    tolerances should stay above ~1e-7.
    """
    comm = as_comm(comm)
    tol = check_tol(tol, "tol")
    stress_tol = tol if stress_tol is None else check_tol(stress_tol, "stress_tol")
    strains, stresses = _check_fields(strains, stresses)
    n_modes, n_pts, n_comp = strains.shape
    n_s = stresses.shape[0]
    w = None if weights is None else _check_weights(weights, n_pts)
    blocks = _block_ranges(n_pts, 8 * (2 * n_s * n_comp + 3 * n_s * n_modes), block_bytes)
    offsets = offsets_of(n_pts, comm)
    off = int(offsets[comm.rank])
    stride = 1 if sample is None else max(1, int(offsets[-1]) // max(1, int(sample)))
    in_sample = (off + np.arange(n_pts)) % stride == 0      # global stride: rank-independent
    bar = _Ticker(comm, 3 * len(blocks), "compress_integrand", progress)
    C, norms2, scale2, b = _first_pass(strains, stresses, w, blocks, off, comm, bar,
                                       None if stride == 1 else in_sample)
    lam_s, V = eig_desc(C)
    V = np.ascontiguousarray(V[:, :truncation_rank(lam_s, stress_tol)])
    r = V.shape[1]

    def H(sl):
        """Rows of H at local points ``sl`` (a slice or increasing indices)."""
        sig = np.asarray(stresses[:, sl, :], dtype=np.float64)
        p = sig.shape[1]
        sig = (V.T @ sig.reshape(n_s, -1)).reshape(r, p, n_comp)
        return _products(sig, strains[:, sl]).reshape(r * n_modes, p)

    cache = None
    if stride == 1 and 8 * r * n_modes * n_pts <= cache_bytes:
        cache = np.empty((r * n_modes, n_pts))
    CH = np.zeros((r * n_modes, r * n_modes))
    for g0, g1 in blocks:                          # Gram of the rows of H (on the sample)
        bar.update()
        if stride == 1:
            h = H(slice(g0, g1))
            if cache is not None:
                cache[:, g0:g1] = h
        else:
            h = H(g0 + np.flatnonzero(in_sample[g0:g1]))
        CH += h @ h.T
    lam, W = eig_desc(allreduce_sum(CH, comm))
    Q = np.ascontiguousarray(W[:, :truncation_rank(lam, tol)])
    if cache is not None:
        out = Q.T @ cache
        bar.update(len(blocks))
    else:
        out = np.empty((Q.shape[1], n_pts))
        for g0, g1 in blocks:
            bar.update()
            out[:, g0:g1] = Q.T @ H(slice(g0, g1))

    kept2 = np.einsum("kg,kg->g", out, out)
    tail = np.sqrt(np.maximum(norms2 - kept2, 0.0) + 1e-13 * scale2)   # + rounding margin
    return CompressedIntegrand(out, V, Q, np.sqrt(lam_s), np.sqrt(lam), b, tail)


def _first_pass(strains, stresses, w, blocks, off: int, comm: MPI.Comm, bar,
                in_sample: np.ndarray | None = None, gram: bool = True):
    """One pass over the stresses: the stress Gram (on the points ``in_sample``, all when
    ``None``; only with ``gram``), the squared true column norms ``||g_g||^2``, their
    rounding scale, and with weights ``w`` the integrals ``G w``. Collective (the Gram and
    the integrals are summed over ranks; ``None`` where not computed)."""
    n_modes, n_pts, _ = strains.shape
    n_s = stresses.shape[0]
    msg, C, b = None, np.zeros((n_s, n_s)), np.zeros((n_s, n_modes))
    norms2 = np.empty(n_pts)                       # ||g_g||^2 = sum_kl S_g[k,l] E_g[k,l]
    scale2 = np.empty(n_pts)                       # sum_kl |S_g[k,l] E_g[k,l]| (rounding scale)
    try:
        for g0, g1 in blocks:
            bar.update()
            blk = _stress_block(stresses, g0, g1, True, off)
            S = np.einsum("sgk,sgl->gkl", blk, blk, optimize=True)
            E = np.einsum("igk,igl->gkl", strains[:, g0:g1], strains[:, g0:g1], optimize=True)
            norms2[g0:g1] = np.einsum("gkl,gkl->g", S, E)
            scale2[g0:g1] = np.einsum("gkl,gkl->g", np.abs(S), np.abs(E))
            if gram:
                sig = (blk if in_sample is None else blk[:, in_sample[g0:g1]]).reshape(n_s, -1)
                C += sig @ sig.T
            if w is not None:
                b += blk.reshape(n_s, -1) @ (strains[:, g0:g1] * w[g0:g1, None]).reshape(
                    n_modes, -1).T
    except ValueError as exc:
        msg = str(exc)
    raise_collective(msg, comm)
    return (allreduce_sum(C, comm) if gram else None, norms2, scale2,
            None if w is None else allreduce_sum(b.ravel(), comm))


def ecm_fields(strains: np.ndarray, stresses: Any, weights: np.ndarray, *, tol: float,
               comm: MPI.Comm | None = None, compress_tol: float | None = None,
               warm_start: np.ndarray | None = None, imposed: np.ndarray | None = None,
               return_info: bool = False, block_bytes: int = BLOCK_BYTES,
               sample: int | None = 20_000, compress: bool = True, **ecm_kwargs):
    """ECM from mechanical fields: compress in blocks (unless ``compress=False``), then NNOMP
    with an exact stop (collective).

    G is never formed. The correlation scan runs on :func:`compress_integrand`'s matrix;
    the points whose correlation bound reaches the maximum get their **true** correlation,
    the NNLS and the stopping test use the true columns of the selected points
    (:func:`integrand_columns`) and the true integrals: the result is the NNOMP of the
    full G (same points as the greedy on G, up to exact ties) and meets
    ``||G_S x - G w|| <= tol ||G w||``. The compression only speeds up the scan: when the
    residual leaves the compressed rows, more points get their true correlation
    (:func:`integrand_correlations`, local), up to all of them (the cost of one
    uncompressed scan per step).

    Parameters
    ----------
    strains, stresses : see :func:`integrand_matrix`
    weights : (n_points,) full-order quadrature weights of this rank's points (m^3)
    tol : relative tolerance of the reduced quadrature on the true integrands
    compress_tol : energy tolerance of both PODs, default ``tol``
    sample : points used for the POD Gram matrices (see :func:`compress_integrand`)
    compress : ``False``: no compression, every scan is one exact streaming pass over the
        points (same points and weights). Cheaper when the greedy takes few scans, or when
        its residual lies below what the compressed rows resolve (``sqrt(compress_tol)``
        relative): then the compressed scan evaluates nearly every point exactly anyway.
        An update warm-started from an earlier quadrature is such a case.
    warm_start, imposed, ecm_kwargs : passed to :func:`rom.hyper.ecm`

    Returns
    -------
    (indices, reduced_weights) as :func:`rom.hyper.ecm`, plus ``info`` (with the ranks
    ``stress_rank`` and ``rank`` of the compression) when ``return_info``.
    """
    comm = as_comm(comm)
    tol = check_tol(tol, "tol")
    if compress:
        ctol = tol if compress_tol is None else check_tol(compress_tol, "compress_tol")
        comp = compress_integrand(strains, stresses, tol=ctol, comm=comm, weights=weights,
                                  block_bytes=block_bytes, sample=sample,
                                  progress=ecm_kwargs.get("progress", 10.0))
        matrix, project, tail, b = comp.matrix, comp.project, comp.tail, comp.integrals
        ranks = {"stress_rank": comp.stress_rank, "rank": comp.rank, "compress_tol": ctol}
    else:                 # nothing seen by a compressed scan: every scan is exact
        strains, stresses = _check_fields(strains, stresses)
        n_pts = strains.shape[1]
        w = _check_weights(weights, n_pts)
        blocks = _block_ranges(n_pts, 8 * (2 * stresses.shape[0] * strains.shape[2]
                                           + 3 * stresses.shape[0] * strains.shape[0]),
                               block_bytes)
        _, norms2, scale2, b = _first_pass(strains, stresses, w, blocks,
                                           int(offsets_of(n_pts, comm)[comm.rank]), comm,
                                           _Ticker(comm, len(blocks), "ecm_fields", None),
                                           gram=False)
        matrix, tail = np.zeros((0, n_pts)), np.sqrt(norms2 + 1e-13 * scale2)
        ranks = {"stress_rank": 0, "rank": 0, "compress_tol": None}

        def project(r):
            return np.zeros(0)

    def columns(J):
        return integrand_columns(strains, stresses, J, comm=comm)

    def correlations(r, idx):
        return integrand_correlations(strains, stresses, r, idx, block_bytes=block_bytes)

    true = TrueIntegrands(b, columns, project, tail, correlations)
    idx, x, info = ecm(matrix, weights, tol=tol, comm=comm, warm_start=warm_start,
                       imposed=imposed, exact=true, return_info=True, **ecm_kwargs)
    info.update(ranks)
    return (idx, x, info) if return_info else (idx, x)

"""Interpolation points of a basis: DEIM, Q-DEIM, and EIM on a snapshot set.

Orientation: a basis ``U`` is ``(n_local, n)``: **rows = points (or dofs), split over the
ranks in global order; columns = the n basis vectors**. Indices returned are global
row indices, identical on every rank.

- DEIM (Chaturantabut & Sorensen 2010): greedy, point l maximizes the interpolation
  residual of basis vector l by the first l-1.
- Q-DEIM (Drmač & Gugercin 2016): the first n pivots of a column-pivoted QR of ``U^T``.
  Distributed here by an *exact* column-pivoted Gram–Schmidt on the rows of U with a
  global argmax per step (one small Allreduce + one row broadcast per step), which
  gives the serial pivots for any rank count. A tournament of local pivoted QRs (each
  rank proposes n rows, one QR of the gathered candidates) is cheaper in latency
  but does **not** always give the serial pivots: the local QRs rank their rows
  against their own first pivots, not the global ones, so the serial k-th pivot
  can be eliminated locally (docs/hyper.md has a 3-mode example; it is a test).
- EIM (Barrault, Maday, Nguyen, Patera 2004): greedy over a snapshot set of
  functions, in the sup norm.

Error bound (orthonormal U): ``||f - U (P^T U)^{-1} P^T f||_2 <= ||(P^T U)^{-1}||_2
||(I - U U^T) f||_2``; :attr:`Interpolation.error_factor` is that factor.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.linalg as sla
from mpi4py import MPI

from ..parallel import as_comm
from ._common import (
    TIE_RTOL,
    float_array,
    gather_rows,
    global_argmax,
    nonfinite_message,
    offsets_of,
    raise_collective,
)

__all__ = ["EIMResult", "Interpolation", "deim", "eim", "interpolation", "qdeim"]


@dataclass(frozen=True)
class Interpolation:
    """Interpolation of a basis at selected points: ``f ≈ U (P^T U)^{-1} f[indices]``.

    Attributes
    ----------
    indices : (n,) global row (point) indices
    PtU : (n, n) the basis rows at the points, ``U[indices, :]`` (same on every rank)
    error_factor : ``||(P^T U)^{-1}||_2 = 1 / sigma_min(P^T U)``, the factor of the
        interpolation error bound for an orthonormal basis
    """

    indices: np.ndarray
    PtU: np.ndarray
    error_factor: float

    def coefficients(self, values: np.ndarray) -> np.ndarray:
        """Coefficients ``(P^T U)^{-1} values``: values (n,) or (n, k) at the points -> (n,) / (n, k)."""
        return sla.solve(self.PtU, np.asarray(values, dtype=float), check_finite=True)

    def matrix(self, U: np.ndarray) -> np.ndarray:
        """This rank's rows of the interpolation matrix ``U (P^T U)^{-1}``: (n_local, n)."""
        return sla.solve(self.PtU.T, np.asarray(U, dtype=float).T).T

    def interpolate(self, U: np.ndarray, values: np.ndarray) -> np.ndarray:
        """This rank's rows of the interpolant ``U (P^T U)^{-1} values``."""
        return np.asarray(U) @ self.coefficients(values)


def _check_basis(U, comm: MPI.Comm, name: str = "U", need_rows: bool = True
                 ) -> tuple[np.ndarray, np.ndarray]:
    U = float_array(U, name, 2)
    offsets = offsets_of(U.shape[0], comm)
    raise_collective(nonfinite_message(U, name, ("row", "column"),
                                       (int(offsets[comm.rank]), 0)), comm)
    ns = comm.allgather(U.shape[1]) if comm.size > 1 else [U.shape[1]]
    if len(set(ns)) != 1:
        raise_collective(f"{name} has {U.shape[1]} columns here but the ranks disagree: {ns}", comm)
    if U.shape[1] == 0:
        raise ValueError(f"{name} has no columns (basis vectors)")
    if need_rows and offsets[-1] < U.shape[1]:
        raise ValueError(f"{name} has {offsets[-1]} rows (points) in all but {U.shape[1]} columns: "
                         f"n points cannot be chosen; is the basis transposed? "
                         f"Expected (n_points, n_modes)")
    return U, offsets


def interpolation(U: np.ndarray, indices: np.ndarray, *, comm: MPI.Comm | None = None
                  ) -> Interpolation:
    """The :class:`Interpolation` of basis ``U`` (n_local, n) at given global row indices (collective)."""
    comm = as_comm(comm)
    U, offsets = _check_basis(U, comm)
    idx = np.asarray(indices, dtype=np.int64)
    PtU = gather_rows(U, idx, offsets, comm)
    s = np.linalg.svd(PtU, compute_uv=False) if PtU.size else np.zeros(1)
    factor = float(1.0 / s[-1]) if s[-1] > 0 else np.inf
    return Interpolation(idx, PtU, factor)


def _rank_error(name: str, k: int, n: int) -> ValueError:
    return ValueError(f"{name}: the basis has numerical rank {k} < {n} columns (step {k + 1} "
                      f"found no point with a nonzero residual); orthonormalize it or drop "
                      f"dependent columns")


def deim(U: np.ndarray, *, comm: MPI.Comm | None = None, full_output: bool = False,
         tie_rtol: float = TIE_RTOL):
    """DEIM points of a basis (Chaturantabut & Sorensen 2010), collective.

    Parameters
    ----------
    U : (n_local, n) this rank's rows of the basis (rows = points, columns = modes)
    comm : communicator over which the rows are split (``None``: serial)
    full_output : return an :class:`Interpolation` instead of the indices
    tie_rtol : residuals within ``tie_rtol * max`` are ties, broken by the smallest global index

    Returns
    -------
    (n,) int64 global row indices in selection order, or an :class:`Interpolation`.
    Cost: ``n^2 n_local`` flops per rank, n small Allreduces.
    """
    comm = as_comm(comm)
    U, offsets = _check_basis(U, comm)
    lo, n = int(offsets[comm.rank]), U.shape[1]
    taken = np.zeros(U.shape[0], dtype=bool)
    idx, rows = [], np.zeros((0, n))
    for l in range(n):
        if l == 0:
            r = U[:, 0].copy()
        else:
            c = sla.solve(rows[:, :l], rows[:, l])
            r = U[:, l] - U[:, :l] @ c
        score = np.abs(r)
        score[taken] = -np.inf
        vmax, j = global_argmax(score, lo, comm, tie_rtol)
        scale = np.abs(U[:, l]).max(initial=0.0)
        scale = scale if comm.size == 1 else comm.allreduce(scale, op=MPI.MAX)
        if j < 0 or vmax <= 1e3 * np.finfo(float).eps * scale:
            raise _rank_error("deim", l, n)
        idx.append(j)
        if lo <= j < lo + U.shape[0]:
            taken[j - lo] = True
        rows = np.vstack([rows, gather_rows(U, np.array([j]), offsets, comm)])
    idx = np.array(idx, dtype=np.int64)
    return interpolation(U, idx, comm=comm) if full_output else idx


def qdeim(U: np.ndarray, *, comm: MPI.Comm | None = None, full_output: bool = False,
          tie_rtol: float = TIE_RTOL):
    """Q-DEIM points: the first n pivots of a column-pivoted QR of ``U^T`` (collective).

    Implemented as column-pivoted modified Gram–Schmidt on the rows of ``U`` with a
    global argmax of the residual row norms at each step (norms downdated, recomputed
    where cancellation exceeds sqrt(eps) as in LAPACK ``geqp3``), so the pivots equal the
    serial ones (``scipy.linalg.qr(U.T, pivoting=True)``) for any rank count, up to
    exact ties, which are broken by the smallest global index.

    Parameters
    ----------
    U : (n_local, n) this rank's rows of the basis (rows = points, columns = modes)
    comm : communicator over which the rows are split (``None``: serial)
    full_output : return an :class:`Interpolation` instead of the indices
    tie_rtol : relative tie tolerance on the squared residual norms

    Returns
    -------
    (n,) int64 global row indices in pivot order, or an :class:`Interpolation`.
    Cost: n passes over the local rows (``2 n^2 n_local`` flops), n small Allreduces
    and n broadcasts of an n-vector.
    """
    comm = as_comm(comm)
    U, offsets = _check_basis(U, comm)
    lo, n = int(offsets[comm.rank]), U.shape[1]
    norms2 = np.einsum("ij,ij->i", U, U)
    orig = norms2.copy()
    scale = orig.max(initial=0.0)
    scale = scale if comm.size == 1 else comm.allreduce(scale, op=MPI.MAX)
    taken = np.zeros(U.shape[0], dtype=bool)
    Q = np.zeros((n, 0))
    idx = []
    for k in range(n):
        score = np.where(taken, -np.inf, norms2)
        vmax, j = global_argmax(score, lo, comm, tie_rtol)
        if j < 0 or vmax <= (1e3 * np.finfo(float).eps) ** 2 * scale:
            raise _rank_error("qdeim", k, n)
        idx.append(j)
        if lo <= j < lo + U.shape[0]:
            taken[j - lo] = True
        u = gather_rows(U, np.array([j]), offsets, comm)[0]
        q = u - Q @ (Q.T @ u)
        q -= Q @ (Q.T @ q)                        # twice is enough (Kahan–Parlett)
        q /= np.linalg.norm(q)
        Q = np.column_stack([Q, q])
        v = U @ q
        norms2 -= v * v
        redo = ~taken & (norms2 <= np.sqrt(np.finfo(float).eps) * orig)
        if redo.any():                            # cancellation: recompute exactly
            Ur = U[redo]
            Rr = Ur - (Ur @ Q) @ Q.T
            norms2[redo] = np.einsum("ij,ij->i", Rr, Rr)
    idx = np.array(idx, dtype=np.int64)
    return interpolation(U, idx, comm=comm) if full_output else idx


@dataclass(frozen=True)
class EIMResult:
    """Result of :func:`eim`.

    Attributes
    ----------
    indices : (n,) global magic-point indices (selection order)
    snapshots : (n,) indices of the snapshots chosen at each step
    basis : (n_local, n) this rank's rows of the EIM basis q_k (``q_k(p_k) = 1``)
    B : (n, n) unit lower-triangular matrix ``basis[indices, :]`` (same on every rank)
    errors : (n + 1,) max sup-norm interpolation error over the snapshots before each
        step and at the end (units of the snapshots)
    """

    indices: np.ndarray
    snapshots: np.ndarray
    basis: np.ndarray
    B: np.ndarray
    errors: np.ndarray

    def coefficients(self, values: np.ndarray) -> np.ndarray:
        """Coefficients from values at the magic points: (n,) or (n, k)."""
        return sla.solve_triangular(self.B, np.asarray(values, dtype=float), lower=True,
                                    unit_diagonal=True)

    def interpolate(self, values: np.ndarray) -> np.ndarray:
        """This rank's rows of the interpolant of values given at the magic points."""
        return self.basis @ self.coefficients(values)


def eim(F: np.ndarray, *, tol: float = 1e-8, max_terms: int | None = None,
        comm: MPI.Comm | None = None, tie_rtol: float = TIE_RTOL) -> EIMResult:
    """Empirical interpolation (greedy, sup norm) over a snapshot set of functions (collective).

    Parameters
    ----------
    F : (n_local, m) this rank's rows of the snapshots: rows = points (global order over
        the ranks), columns = the m functions (any units)
    tol : stop when ``max_s ||f_s - I f_s||_inf <= tol * max_s ||f_s||_inf``
    max_terms : at most this many terms (default ``m``)
    comm : communicator over which the rows are split (``None``: serial)
    tie_rtol : ties in both argmaxes (snapshot, point) go to the smallest index

    Returns
    -------
    :class:`EIMResult`. Cost: ``2 n m n_local`` flops per rank; memory one copy of F.
    """
    comm = as_comm(comm)
    F, offsets = _check_basis(F, comm, "F", need_rows=False)
    lo, m = int(offsets[comm.rank]), F.shape[1]
    cap = min(m, int(offsets[-1]))
    max_terms = cap if max_terms is None else min(int(max_terms), cap)
    R = F.copy()
    cols, idx, snaps, errors = [], [], [], []
    scale = None
    while True:
        err = np.abs(R).max(axis=0, initial=0.0)
        if comm.size > 1:
            comm.Allreduce(MPI.IN_PLACE, err, op=MPI.MAX)
        scale = err.max() if scale is None else scale
        errors.append(float(err.max()))
        if len(idx) >= max_terms or err.max() <= tol * scale or err.max() == 0.0:
            break
        s = int(np.flatnonzero(err >= err.max() * (1 - tie_rtol))[0])
        _, j = global_argmax(np.abs(R[:, s]), lo, comm, tie_rtol)
        row = gather_rows(R, np.array([j]), offsets, comm)[0]
        q = R[:, s] / row[s]
        R -= np.outer(q, row)
        cols.append(q)
        idx.append(j)
        snaps.append(s)
    basis = np.column_stack(cols) if cols else np.zeros((F.shape[0], 0))
    idx = np.array(idx, dtype=np.int64)
    B = gather_rows(basis, idx, offsets, comm)
    return EIMResult(idx, np.array(snaps, dtype=np.int64), basis, B, np.array(errors))

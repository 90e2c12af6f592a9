"""Empirical interpolation of parametric sparse matrices (matrix EIM) and vectors (vector EIM).

Nonintrusive: only assembled operators ``A(mu)`` (scipy CSR row blocks with global
columns, or PETSc AIJ matrices through a lazy converter) and right-hand sides ``f(mu)``
for the training parameters are needed. The entries ``(A_mu)_ij`` are treated as a
function of ``(i, j)`` and ``mu``; the greedy of :mod:`rom.interp.greedy` selects magic
entries ``(i_l, j_l)`` and training parameters ``mu_l`` so that

    A(mu) ~= sum_m gamma_m(mu) Q_m = sum_l beta_l(mu) A(mu_l),   beta = C gamma,

where ``gamma`` solves the unit lower-triangular system ``B gamma = (A_mu)_{i_l j_l}``.
Online, only the ``M`` magic entries of ``A(mu)`` are needed: through a user hook that
returns just those values, or (fallback) by assembling ``A(mu)`` once and reading them.
"""
from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import scipy.sparse as sp
from mpi4py import MPI
from scipy.linalg import solve_triangular

from ..parallel import as_comm
from ._dist import allsum, as_local_csr, check, offsets_of
from .greedy import Greedy

__all__ = [
    "MagicCost",
    "MatrixEIM",
    "VectorEIM",
    "as_training",
    "matrix_eim",
    "vector_eim",
]

MatrixHook = Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray]
VectorHook = Callable[[np.ndarray, np.ndarray], np.ndarray]


@dataclass
class MagicCost:
    """How the magic values of one query were obtained.

    Attributes
    ----------
    method : ``"entries"`` (user hook) or ``"assembly"`` (full assembly, fallback)
    seconds : wall time on this rank [s]
    n_values : number of magic values
    assembled_nnz : non-zeros assembled (global) for the fallback, 0 with the hook
    """

    method: str
    seconds: float
    n_values: int
    assembled_nnz: int = 0


def as_training(training: Any) -> np.ndarray:
    """Training parameters as a finite float array ``(K, d)`` (1-D input: ``d = 1``)."""
    P = np.asarray(training, dtype=np.float64)
    if P.ndim == 1:
        P = P[:, None]
    if P.ndim != 2 or P.shape[0] == 0:
        raise ValueError(f"training parameters must be a non-empty (K, d) array, got {P.shape}")
    if not np.all(np.isfinite(P)):
        raise ValueError("training parameters contain NaN or inf")
    return P


def _check_tol(tol: float, max_terms: int | None, K: int) -> int:
    if not (isinstance(tol, (int, float)) and 0.0 <= tol < 1.0):
        raise ValueError(f"tol must be a number in [0, 1), got {tol!r}")
    if max_terms is not None and (int(max_terms) != max_terms or max_terms < 1):
        raise ValueError(f"max_terms must be a positive integer, got {max_terms!r}")
    return K if max_terms is None else min(int(max_terms), K)


@dataclass
class _Interpolant:
    """Online part common to matrix and vector EIM (small, replicated arrays)."""

    magic_rows: np.ndarray          # (M,) global rows of the magic entries
    B: np.ndarray                   # (M, M) unit lower triangular, B[l, m] = q_m(x_l)
    C: np.ndarray                   # (M, M) upper triangular, q_m = sum_l C[l, m] A(mu_l)
    parameters: np.ndarray          # (M, d) selected training parameters mu_l
    selected: np.ndarray            # (M,) their indices in the training set
    errors: np.ndarray              # (M + 1,) training max-entry error / scale after 0..M terms
    scale: float                    # max_k ||A(mu_k)||_max over the training set
    training_gamma: np.ndarray      # (K, M) coefficients gamma of every training member
    n_rows: int
    comm: MPI.Comm = field(default_factory=lambda: MPI.COMM_SELF, repr=False)
    Q: np.ndarray | None = field(default=None, repr=False)   # (M, n_local) basis (offline)
    S_selected: np.ndarray | None = field(default=None, repr=False)  # (M, n_local) A(mu_l)
    row_offsets: np.ndarray | None = field(default=None, repr=False)

    @property
    def n_terms(self) -> int:
        return int(self.B.shape[0])

    @property
    def lo(self) -> int:
        return 0 if self.row_offsets is None else int(self.row_offsets[self.comm.rank])

    @property
    def hi(self) -> int:
        return self.n_rows if self.row_offsets is None else int(
            self.row_offsets[self.comm.rank + 1])

    def _owned(self) -> np.ndarray:
        return np.flatnonzero((self.magic_rows >= self.lo) & (self.magic_rows < self.hi))

    def coefficients(self, values: np.ndarray, n_terms: int | None = None) -> np.ndarray:
        """``gamma`` (M,) from the magic values (M,): ``B gamma = values`` (lower triangular).

        With ``n_terms = m`` only the first ``m`` terms are used (nested interpolants).
        """
        values = np.asarray(values, dtype=np.float64)
        m = self.n_terms if n_terms is None else int(n_terms)
        if values.shape != (self.n_terms,) and values.shape != (m,):
            raise ValueError(f"expected {self.n_terms} magic values, got shape {values.shape}")
        if not np.all(np.isfinite(values[:m])):
            raise ValueError("magic values contain NaN or inf")
        return solve_triangular(self.B[:m, :m], values[:m], lower=True, unit_diagonal=True)

    def beta(self, values: np.ndarray) -> np.ndarray:
        """Coefficients on the training operators ``A(mu_l)``: ``beta = C gamma`` (M,)."""
        return self.C @ self.coefficients(values)


@dataclass
class MatrixEIM(_Interpolant):
    """Matrix EIM: magic entries ``(magic_rows, magic_cols)`` and the online solve.

    Offline-only attributes (``None`` after :func:`rom.interp.artifact.load`): the basis
    values ``Q`` (M, nnz_local) and the selected training values ``S_selected`` on the
    local union pattern ``pattern``.
    """

    magic_cols: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    n_cols: int = 0
    pattern: sp.csr_matrix | None = field(default=None, repr=False)

    def magic_values(self, mu: np.ndarray, *, assemble: Callable | None = None,
                     entries: MatrixHook | None = None) -> tuple[np.ndarray, MagicCost]:
        """Values ``(A_mu)_{i_l j_l}`` (M,) for a new ``mu`` (collective), and their cost.

        Parameters
        ----------
        mu : (d,) parameter
        assemble : ``mu -> A(mu)`` local row block (fallback: assembled once)
        entries : hook ``(mu, rows, cols) -> values`` called with the global indices of
            the magic entries whose rows this rank owns (possibly empty); preferred
        """
        mu = np.asarray(mu, dtype=np.float64)
        own = self._owned()
        rows, cols = self.magic_rows[own], self.magic_cols[own]
        out = np.zeros(self.n_terms)
        t0 = time.perf_counter()
        if entries is not None:
            vals = np.asarray(entries(mu, rows.copy(), cols.copy()), dtype=np.float64)
            if vals.shape != rows.shape:
                raise ValueError(f"entries hook returned shape {vals.shape}, expected {rows.shape}")
            out[own] = vals
            nnz = 0
            method = "entries"
        elif assemble is not None:
            A = as_local_csr(assemble(mu), "assemble(mu)")
            out[own] = _csr_values(A, rows - self.lo, cols)
            nnz = int(allsum([A.nnz], self.comm)[0])
            method = "assembly"
        else:
            raise ValueError("magic_values needs the `entries` hook or an `assemble` callable")
        out = allsum(out, self.comm)
        return out, MagicCost(method, time.perf_counter() - t0, self.n_terms, nnz)

    def matrix(self, gamma: np.ndarray) -> sp.csr_matrix:
        """``sum_m gamma_m Q_m``: the interpolant as a local CSR row block (offline only)."""
        if self.Q is None or self.pattern is None:
            raise ValueError("the basis matrices are not available (model loaded from a file)")
        gamma = np.asarray(gamma, dtype=np.float64)
        P = self.pattern.copy()
        P.data = gamma @ self.Q[:gamma.size]
        return P

    def basis_matrix(self, m: int) -> sp.csr_matrix:
        """The basis matrix ``Q_m`` (local CSR row block, offline only)."""
        e = np.zeros(self.n_terms)
        e[m] = 1.0
        return self.matrix(e)

    def training_matrix(self, l: int) -> sp.csr_matrix:
        """The selected training matrix ``A(mu_l)`` on the union pattern (offline only)."""
        if self.S_selected is None or self.pattern is None:
            raise ValueError("the training matrices are not available (model loaded from a file)")
        P = self.pattern.copy()
        P.data = self.S_selected[l].copy()
        return P

    def interpolation_error(self, A_local: Any, n_terms: int | None = None) -> float:
        """``||A - I_M[A]||_max / scale`` for an assembled matrix (collective, offline only)."""
        A = as_local_csr(A_local, "A")
        vals = allsum(self._local_values(A), self.comm)
        g = self.coefficients(vals, n_terms)
        D = A - self.matrix(g)
        e = np.array([np.abs(D.data).max() if D.nnz else 0.0])
        if self.comm.size > 1:
            self.comm.Allreduce(MPI.IN_PLACE, e, op=MPI.MAX)
        return float(e[0]) / self.scale

    def _local_values(self, A: sp.csr_matrix) -> np.ndarray:
        out = np.zeros(self.n_terms)
        own = self._owned()
        out[own] = _csr_values(A, self.magic_rows[own] - self.lo, self.magic_cols[own])
        return out

    def project(self, W_local: np.ndarray, V_full: np.ndarray,
                which: str = "basis") -> np.ndarray:
        """Reduced matrices ``W^T Q_m V`` (or ``W^T A(mu_l) V``): (M, nw, nv), replicated.

        Parameters
        ----------
        W_local : (n_local, nw) local rows of the test basis
        V_full : (n_cols, nv) the whole trial basis (every rank)
        which : ``"basis"`` (Q_m) or ``"training"`` (A(mu_l), the nonintrusive form)
        """
        get = self.basis_matrix if which == "basis" else self.training_matrix
        out = np.stack([W_local.T @ (get(m) @ V_full) for m in range(self.n_terms)])
        return allsum(out, self.comm)


@dataclass
class VectorEIM(_Interpolant):
    """Vector EIM (right-hand sides): magic rows and the online solve."""

    def magic_values(self, mu: np.ndarray, *, rhs: Callable | None = None,
                     entries: VectorHook | None = None) -> tuple[np.ndarray, MagicCost]:
        """Values ``f(mu)[i_l]`` (M,) for a new ``mu`` (collective), and their cost.

        ``entries(mu, rows) -> values`` is called with the owned magic rows (global);
        without it ``rhs(mu)`` (local rows) is evaluated once.
        """
        mu = np.asarray(mu, dtype=np.float64)
        own = self._owned()
        rows = self.magic_rows[own]
        out = np.zeros(self.n_terms)
        t0 = time.perf_counter()
        if entries is not None:
            vals = np.asarray(entries(mu, rows.copy()), dtype=np.float64)
            if vals.shape != rows.shape:
                raise ValueError(f"entries hook returned shape {vals.shape}, expected {rows.shape}")
            out[own], nnz, method = vals, 0, "entries"
        elif rhs is not None:
            f = np.asarray(rhs(mu), dtype=np.float64).ravel()
            out[own] = f[rows - self.lo]
            nnz, method = int(allsum([f.size], self.comm)[0]), "assembly"
        else:
            raise ValueError("magic_values needs the `entries` hook or an `rhs` callable")
        out = allsum(out, self.comm)
        return out, MagicCost(method, time.perf_counter() - t0, self.n_terms, nnz)

    def vector(self, gamma: np.ndarray) -> np.ndarray:
        """``sum_m gamma_m q_m`` (n_local,) (offline only)."""
        if self.Q is None:
            raise ValueError("the basis vectors are not available (model loaded from a file)")
        gamma = np.asarray(gamma, dtype=np.float64)
        return gamma @ self.Q[:gamma.size]

    def interpolation_error(self, f_local: np.ndarray, n_terms: int | None = None) -> float:
        """``||f - I_M[f]||_max / scale`` (collective, offline only)."""
        f = np.asarray(f_local, dtype=np.float64).ravel()
        own = self._owned()
        vals = np.zeros(self.n_terms)
        vals[own] = f[self.magic_rows[own] - self.lo]
        g = self.coefficients(allsum(vals, self.comm), n_terms)
        e = np.array([np.abs(f - self.vector(g)).max() if f.size else 0.0])
        if self.comm.size > 1:
            self.comm.Allreduce(MPI.IN_PLACE, e, op=MPI.MAX)
        return float(e[0]) / self.scale


# ---------------------------------------------------------------------------- helpers
def _csr_values(A: sp.csr_matrix, rows_local: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """``A[i, j]`` for local rows ``i`` and global columns ``j`` (0 outside the pattern)."""
    out = np.zeros(len(rows_local))
    for t, (i, j) in enumerate(zip(rows_local, cols)):
        a, b = A.indptr[i], A.indptr[i + 1]
        p = a + int(np.searchsorted(A.indices[a:b], j))
        if p < b and A.indices[p] == j:
            out[t] = A.data[p]
    return out


def _collect(source: Any, P: np.ndarray, convert: Callable[[Any, str], Any]) -> list:
    if callable(source):
        return [convert(source(mu.copy()), f"member {k}") for k, mu in enumerate(P)]
    items = list(source)
    if len(items) != len(P):
        raise ValueError(f"{len(items)} members given for {len(P)} training parameters")
    return [convert(x, f"member {k}") for k, x in enumerate(items)]


def _finish(cls, g: Greedy, P: np.ndarray, scale: float, n_rows: int, offsets, comm, S,
            **extra) -> Any:
    errors = np.asarray(g.errors) / (scale if scale > 0 else 1.0)
    return cls(magic_rows=extra.pop("magic_rows"), B=g.B.copy(), C=g.C.copy(),
               parameters=P[g.selected].copy(), selected=g.selected.copy(), errors=errors,
               scale=scale, training_gamma=g.gamma.copy(), n_rows=n_rows, comm=comm,
               Q=g.Q, S_selected=S, row_offsets=offsets, **extra)


def _scale(S: np.ndarray, comm: MPI.Comm) -> float:
    s = np.array([np.abs(S).max() if S.size else 0.0])
    if comm.size > 1:
        comm.Allreduce(MPI.IN_PLACE, s, op=MPI.MAX)
    return float(s[0])


# ---------------------------------------------------------------------------- builders
def matrix_eim(source: Callable[[np.ndarray], Any] | Sequence[Any], training: Any, *,
               comm: MPI.Comm | None = None, tol: float = 1e-10,
               max_terms: int | None = None) -> MatrixEIM:
    """Greedy EIM over the entries of parametric sparse matrices (collective).

    Parameters
    ----------
    source : callable ``mu (d,) -> A(mu)`` returning this rank's CSR row block
        ``(n_local, n_cols)`` with global columns (scipy sparse, dense or PETSc AIJ Mat),
        or the list of the ``K`` assembled training matrices
    training : (K, d) training parameters (identical on every rank)
    comm : communicator; rank ``r`` owns a contiguous block of rows in rank order
    tol : stop when ``max_k ||A(mu_k) - I_M[A(mu_k)]||_max <= tol * max_k ||A(mu_k)||_max``
    max_terms : at most this many terms (default: K)

    Returns
    -------
    MatrixEIM, with identical magic entries, parameters, ``B`` and ``C`` on every rank,
    bitwise independent of the number of ranks. Patterns may differ between members:
    the union of the patterns is used (per row).

    Raises
    ------
    ValueError : bad parameters, inconsistent shapes, non-finite entries (on every rank).
    """
    comm = as_comm(comm)
    P = as_training(training)
    max_terms = _check_tol(tol, max_terms, P.shape[0])
    mats, msg = [], None
    try:
        mats = _collect(source, P, as_local_csr)
        shapes = {A.shape for A in mats}
        if len(shapes) != 1:
            msg = f"training matrices have different local shapes: {sorted(shapes)}"
        elif not all(np.all(np.isfinite(A.data)) for A in mats):
            bad = next(k for k, A in enumerate(mats) if not np.all(np.isfinite(A.data)))
            msg = f"training matrix {bad} (mu = {P[bad].tolist()}) contains NaN or inf"
    except ValueError as exc:
        msg = str(exc)
    check(msg, comm)
    n_local, n_cols = mats[0].shape
    ncols_all = comm.allgather(n_cols) if comm.size > 1 else [n_cols]
    check(None if len(set(ncols_all)) == 1 else
          f"ranks disagree on the number of columns: {ncols_all}", comm)
    offsets = offsets_of(n_local, comm)
    lo = int(offsets[comm.rank])
    # union pattern (per row, hence rank-count independent); keys = i * n_cols + j
    same = all(np.array_equal(A.indptr, mats[0].indptr) and
               np.array_equal(A.indices, mats[0].indices) for A in mats[1:])
    if same:
        pattern = sp.csr_matrix((np.zeros(mats[0].nnz), mats[0].indices.copy(),
                                 mats[0].indptr.copy()), shape=mats[0].shape)
        S = np.stack([A.data for A in mats])
    else:
        allkeys = [_keys(A, lo, n_cols) for A in mats]
        union = np.unique(np.concatenate(allkeys))
        S = np.zeros((len(mats), union.size))
        for k, (A, keys) in enumerate(zip(mats, allkeys)):
            S[k, np.searchsorted(union, keys)] = A.data
        rows = union // n_cols - lo
        pattern = sp.csr_matrix((np.zeros(union.size), union % n_cols,
                                 np.concatenate([[0], np.cumsum(np.bincount(
                                     rows, minlength=n_local))])), shape=(n_local, n_cols))
    del mats
    keys = _keys(pattern, lo, n_cols)
    scale = _scale(S, comm)
    g = Greedy(keys, comm)
    g.add(S, copy=True)
    g.run(tol * scale, max_terms)
    S_sel = S[g.selected].copy()
    del S
    mk = g.magic_keys
    return _finish(MatrixEIM, g, P, scale, int(offsets[-1]), offsets, comm, S_sel,
                   magic_rows=mk // n_cols, magic_cols=mk % n_cols, n_cols=int(n_cols),
                   pattern=pattern)


def vector_eim(source: Callable[[np.ndarray], np.ndarray] | Sequence[np.ndarray],
               training: Any, *, comm: MPI.Comm | None = None, tol: float = 1e-10,
               max_terms: int | None = None) -> VectorEIM:
    """Greedy EIM over the entries of parametric vectors (right-hand sides; collective).

    Parameters
    ----------
    source : callable ``mu -> f(mu)`` (n_local,) local rows, or the list of K vectors
    training, comm, tol, max_terms : as in :func:`matrix_eim`

    Returns
    -------
    VectorEIM (magic rows, ``B``, ``C``; bitwise independent of the number of ranks).
    """
    comm = as_comm(comm)
    P = as_training(training)
    max_terms = _check_tol(tol, max_terms, P.shape[0])

    def conv(f, what):
        f = np.asarray(f, dtype=np.float64)
        if f.ndim != 1:
            raise ValueError(f"{what}: expected a 1-D vector, got shape {f.shape}")
        return f

    msg, vecs = None, []
    try:
        vecs = _collect(source, P, conv)
        if len({v.size for v in vecs}) != 1:
            msg = f"training vectors have different lengths: {sorted({v.size for v in vecs})}"
        elif not all(np.all(np.isfinite(v)) for v in vecs):
            msg = "a training vector contains NaN or inf"
    except ValueError as exc:
        msg = str(exc)
    check(msg, comm)
    S = np.stack(vecs)
    offsets = offsets_of(S.shape[1], comm)
    lo = int(offsets[comm.rank])
    scale = _scale(S, comm)
    g = Greedy(np.arange(lo, lo + S.shape[1], dtype=np.int64), comm)
    g.add(S, copy=True)
    g.run(tol * scale, max_terms)
    return _finish(VectorEIM, g, P, scale, int(offsets[-1]), offsets, comm,
                   S[g.selected].copy(), magic_rows=g.magic_keys.copy())


def _keys(A: sp.csr_matrix, lo: int, n_cols: int) -> np.ndarray:
    rows = np.repeat(np.arange(A.shape[0], dtype=np.int64), np.diff(A.indptr))
    return (rows + lo) * np.int64(n_cols) + A.indices.astype(np.int64)

"""The EIM greedy on a family of distributed vectors (shared by matrix, vector and residual EIM).

A family of ``K`` members is stored as an array ``S`` of shape ``(K, n_local)``: member
``k``'s values on this rank's entries, which carry increasing global *keys* (for a
vector: the global row; for a matrix: ``i * n_cols + j`` over the CSR pattern). Step
``M`` of the greedy:

1. ``k* = argmax_k ||r_k||_max`` (the worst-approximated member; ties: smallest ``k``),
2. magic entry ``x_M = argmax_x |r_k*(x)|`` (global argmax; ties: smallest key),
3. ``q_M = r_k* / r_k*(x_M)``; every residual ``r_k -= r_k(x_M) q_M`` (Newton form).

Every operation on the entries is elementwise or an exact max, and every reduction
has a single non-zero contribution, so the selected entries, members and the basis
are bitwise independent of the number of ranks.
"""
from __future__ import annotations

import numpy as np
from mpi4py import MPI
from scipy.linalg import solve_triangular

from ..parallel import as_comm

__all__ = ["Greedy"]

_CHUNK = 1 << 22   # entries per temporary block of the residual update


class Greedy:
    """Incremental EIM greedy over the rows of a distributed family.

    Parameters
    ----------
    keys : (n_local,) int64, strictly increasing global keys of the local entries
    comm : communicator (``None``: serial)

    Attributes
    ----------
    R : (K, n_local) current residuals of the members
    Q : (M, n_local) interpolation basis (``q_m(x_m) = 1``, ``q_m(x_l) = 0`` for ``l < m``)
    B : (M, M) unit lower-triangular ``B[l, m] = q_m(x_l)``
    C : (M, M) upper-triangular: ``q_m = sum_l C[l, m] S_{selected[l]}``
    gamma : (K, M) interpolation coefficients of each member in the basis ``Q``
    magic_keys : (M,) global keys of the magic entries
    selected : (M,) member chosen at each step
    errors : list of ``max_k ||r_k||_max`` before each step and after the last
    """

    def __init__(self, keys: np.ndarray, comm: MPI.Comm | None = None):
        self.comm = as_comm(comm)
        self.keys = np.asarray(keys, dtype=np.int64)
        n = self.keys.size
        self.R = np.empty((0, n))
        self.Q = np.empty((0, n))
        self.B = np.zeros((0, 0))
        self.C = np.zeros((0, 0))
        self.gamma = np.zeros((0, 0))
        self.magic_keys = np.zeros(0, dtype=np.int64)
        self.magic_pos = np.zeros(0, dtype=np.int64)     # local position, -1 if not owned
        self.selected = np.zeros(0, dtype=np.int64)
        self.errors: list[float] = []

    # ------------------------------------------------------------------ helpers
    @property
    def n_terms(self) -> int:
        return self.Q.shape[0]

    def values_at_magic(self, S: np.ndarray) -> np.ndarray:
        """Values of the rows of ``S`` (k, n_local) at the magic entries: (k, M), replicated."""
        out = np.zeros((S.shape[0], self.n_terms))
        own = self.magic_pos >= 0
        out[:, own] = S[:, self.magic_pos[own]]
        if self.comm.size > 1:
            self.comm.Allreduce(MPI.IN_PLACE, out, op=MPI.SUM)
        return out

    def max_errors(self) -> np.ndarray:
        """``||r_k||_max`` for every member (exact global max): (K,)."""
        R = self.R                             # max |r| without a (K, n) temporary
        e = np.maximum(R.max(axis=1), -R.min(axis=1)) if R.shape[1] else np.zeros(R.shape[0])
        if self.comm.size > 1:
            self.comm.Allreduce(MPI.IN_PLACE, e, op=MPI.MAX)
        return e

    # ------------------------------------------------------------------ members
    def add(self, S: np.ndarray, *, copy: bool = True) -> None:
        """Append members ``S`` (k, n_local); their residuals against the current basis."""
        S = np.array(S, dtype=np.float64, copy=copy)
        if S.ndim != 2 or S.shape[1] != self.keys.size:
            raise ValueError(f"members must have shape (k, {self.keys.size}), got {S.shape}")
        g = np.zeros((S.shape[0], self.n_terms))
        if self.n_terms:
            g = solve_triangular(self.B, self.values_at_magic(S).T, lower=True,
                                 unit_diagonal=True).T
            S -= g @ self.Q
            own = self.magic_pos[self.magic_pos >= 0]
            S[:, own] = 0.0                  # interpolation is exact at the magic entries
        self.R = S if self.R.shape[0] == 0 else np.vstack([self.R, S])
        self.gamma = np.vstack([self.gamma.reshape(self.R.shape[0] - S.shape[0], self.n_terms), g])

    # ------------------------------------------------------------------ greedy
    def step(self, err: np.ndarray | None = None) -> bool:
        """One greedy step; returns False (and does nothing) if every residual is zero."""
        err = self.max_errors() if err is None else err
        k = int(np.argmax(err))
        if not err[k] > 0.0:
            return False
        r = self.R[k]
        if r.size:
            j = int(np.argmax(np.abs(r)))
            cand = (float(abs(r[j])), int(self.keys[j]), float(r[j]))
        else:
            cand = (-1.0, -1, 0.0)
        cands = self.comm.allgather(cand) if self.comm.size > 1 else [cand]
        best = max(c[0] for c in cands)
        owner, (_, key, piv) = min(((i, c) for i, c in enumerate(cands) if c[0] == best),
                                   key=lambda t: t[1][1])
        pos = int(np.searchsorted(self.keys, key)) if self.comm.rank == owner else -1
        q = r / piv
        # column of residual values at the new magic entry (exact single-owner reduction)
        col = np.zeros(self.R.shape[0])
        row = np.zeros(self.n_terms)                          # q_m(x_M), m < M
        if pos >= 0:
            col[:] = self.R[:, pos]
            row[:] = self.Q[:, pos]
        if self.comm.size > 1:
            both = np.concatenate([col, row])
            self.comm.Allreduce(MPI.IN_PLACE, both, op=MPI.SUM)
            col, row = both[:col.size], both[col.size:]
        M = self.n_terms
        # basis in terms of the selected members: q_M = (S_k - sum_m gamma[k, m] q_m) / piv
        c_new = np.zeros(M + 1)
        c_new[M] = 1.0
        c_new[:M] -= self.C @ self.gamma[k]
        c_new /= piv
        self.C = np.pad(self.C, ((0, 1), (0, 1)))
        self.C[:, M] = c_new
        self.B = np.pad(self.B, ((0, 1), (0, 1)))
        self.B[M, :M] = row
        self.B[M, M] = 1.0
        self.gamma = np.hstack([self.gamma, col[:, None]])
        self.Q = np.vstack([self.Q, q[None, :]])
        self.magic_keys = np.append(self.magic_keys, key)
        self.magic_pos = np.append(self.magic_pos, pos)
        self.selected = np.append(self.selected, k)
        # r_i -= col_i q, elementwise (numpy multiply then subtract, no FMA): the result of
        # every entry is independent of the distribution. Row chunks bound the temporary.
        step = max(1, _CHUNK // max(q.size, 1))
        for a in range(0, self.R.shape[0], step):
            self.R[a:a + step] -= np.multiply.outer(col[a:a + step], q)
        if pos >= 0:
            self.R[:, pos] = 0.0
        return True

    def run(self, atol: float, max_terms: int) -> None:
        """Greedy steps while ``max_k ||r_k||_max > atol`` and fewer than ``max_terms`` terms."""
        while True:
            err = self.max_errors()
            top = float(err.max()) if err.size else 0.0
            self.errors = self.errors[:self.n_terms] + [top]
            if top <= atol or self.n_terms >= max_terms:
                return
            if not self.step(err):
                return

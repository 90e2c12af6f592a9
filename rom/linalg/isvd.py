"""Brand's incremental SVD of a row-distributed matrix, one column at a time.

After adding columns ``a_1 .. a_j``, ``U diag(S) V^T`` reproduces ``[a_1 .. a_j]`` up to the
directions skipped as dependent (``rho <= tol ||a||``) and the ``max_rank`` truncation,
with ``U`` M-orthonormal (local rows) and ``V`` (j x r) replicated on every rank.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import scipy.linalg as sla
from mpi4py import MPI

from ..parallel import as_comm
from .distributed import as_product, gram, raise_collectively
from .orth import cholqr
from .pod import _canonical_signs

__all__ = ["IncrementalSVD"]


class IncrementalSVD:
    """Incremental (Brand 2002) SVD with re-orthogonalization; collective on ``comm``.

    Parameters
    ----------
    comm : communicator, ``None`` for serial
    tol : a new column whose residual after projection is ``rho <= tol * ||a||`` adds no
        direction (the rank does not grow) but still updates S and V
    max_rank : keep at most this many singular triplets (the smallest are dropped)
    product : inner product ``M`` (see :mod:`rom.linalg.distributed`), default Euclidean
    check_every : every this many additions, check ``||U^T M U - I||_max`` (one small Gram)
        and re-orthonormalize U (CholQR) if it exceeds ``orth_tol``
    orth_tol : tolerance of that check

    Examples
    --------
    >>> isvd = IncrementalSVD(comm)
    >>> isvd.add_many(X_local)          # or isvd.add(a_local) column by column
    >>> isvd.modes, isvd.singular_values, isvd.right_vectors
    """

    def __init__(self, comm: MPI.Comm | None = None, *, tol: float = 1e-12,
                 max_rank: int | None = None, product: Any = None, check_every: int = 10,
                 orth_tol: float = 1e-12):
        if tol < 0 or (max_rank is not None and max_rank < 1) or check_every < 1:
            raise ValueError("IncrementalSVD: need tol >= 0, max_rank >= 1 (or None), "
                             "check_every >= 1")
        self.comm = as_comm(comm)
        self.tol, self.max_rank, self.orth_tol = float(tol), max_rank, float(orth_tol)
        self.check_every = int(check_every)
        self._product = product
        self._M = None
        self._U: np.ndarray | None = None            # (n_local, r)
        self._S = np.zeros(0)
        self._V = np.zeros((0, 0))                    # (j, r)
        self.n_columns = 0
        self.skipped: list[int] = []                  # columns that added no direction

    @classmethod
    def from_factors(cls, modes: np.ndarray, singular_values: np.ndarray,
                     comm: MPI.Comm | None = None, **kwargs) -> IncrementalSVD:
        """Start from a thin SVD ``modes diag(s)`` (modes M-orthonormal, local rows), as if
        its r columns ``modes[:, i] s_i`` had been added (right vectors: the identity).
        Adding one more column then costs one update, O(n_local r^2), not r of them."""
        self = cls(comm, **kwargs)
        U = np.asarray(modes, dtype=np.float64)
        S = np.asarray(singular_values, dtype=np.float64).reshape(-1)
        if U.ndim != 2 or U.shape[1] != S.size:
            raise ValueError(f"IncrementalSVD.from_factors: modes {U.shape} and "
                             f"{S.size} singular values do not match")
        self._M = as_product(self._product, U.shape[0], self.comm)
        self._set(U, S, np.eye(S.size))
        self.n_columns = S.size
        return self

    # ---------------------------------------------------------------- properties
    @property
    def rank(self) -> int:
        return int(self._S.size)

    @property
    def modes(self) -> np.ndarray:
        """(n_local, r) local rows of the M-orthonormal left singular vectors."""
        return self._U if self._U is not None else np.zeros((0, 0))

    @property
    def singular_values(self) -> np.ndarray:
        """(r,) descending."""
        return self._S

    @property
    def right_vectors(self) -> np.ndarray:
        """(j, r) right singular vectors (replicated), j = columns added."""
        return self._V

    # ---------------------------------------------------------------- updates
    def add(self, a_local: np.ndarray) -> bool:
        """Add one column (collective). Returns True if it added a new direction.

        Parameters
        ----------
        a_local : (n_local,) this rank's rows of the new column
        """
        a = np.asarray(a_local, dtype=np.float64).reshape(-1)
        if self._U is None:
            self._M = as_product(self._product, a.size, self.comm)
            self._U = np.zeros((a.size, 0))
        n_local = self._U.shape[0]
        msg = None
        if a.size != n_local:
            msg = f"IncrementalSVD.add: column has {a.size} local rows, expected {n_local}"
        elif not np.all(np.isfinite(a)):
            msg = (f"IncrementalSVD.add: column {self.n_columns} contains NaN/inf at local row "
                   f"{int(np.flatnonzero(~np.isfinite(a))[0])}")
        raise_collectively(msg, self.comm)
        M, U, r = self._M, self._U, self.rank
        # one Allreduce: U^T M a and ||a||^2 together
        Ma = M.apply(a)
        c = np.append(U.T @ Ma, a @ Ma)                         # (no copy of U)
        if self.comm.size > 1:
            self.comm.Allreduce(MPI.IN_PLACE, c, op=MPI.SUM)
        m, anorm = c[:r], np.sqrt(max(c[r], 0.0))
        p = a - U @ m
        m2 = gram(U, M.apply(p)[:, None], self.comm)[:, 0]      # re-orthogonalize (twice)
        p -= U @ m2
        m = m + m2
        Mp = M.apply(p)
        rho = np.sqrt(max(gram(p[:, None], Mp[:, None], self.comm)[0, 0], 0.0))
        grow = anorm > 0 and rho > self.tol * anorm
        if not grow and r == 0:                                 # zero column, empty basis
            self._V = np.zeros((self._V.shape[0] + 1, 0))
            self.skipped.append(self.n_columns)
            self.n_columns += 1
            return False
        K = np.zeros((r + 1, r + 1))
        K[:r, :r] = np.diag(self._S)
        K[:r, r] = m
        K[r, r] = rho if grow else 0.0
        Uk, Sk, Vkt = sla.svd(K if grow else K[:r], full_matrices=False, check_finite=False)
        Vk = Vkt.T                                              # (r+1, r or r+1)
        V = np.zeros((self._V.shape[0] + 1, r + 1))
        V[:-1, :r] = self._V
        V[-1, r] = 1.0
        if grow:
            q, U = p / rho, U @ Uk[:r]                         # [U, q] Uk without a copy
            for i in range(0, U.shape[0], 1 << 15):               # of U (blocks of rows)
                U[i:i + (1 << 15)] += np.outer(q[i:i + (1 << 15)], Uk[r])
        else:
            U = U @ Uk
            self.skipped.append(self.n_columns)
        self._set(U, Sk, V @ Vk, owned=True)
        self.n_columns += 1
        if self.n_columns % self.check_every == 0:
            self.check_orthogonality()
        return bool(grow)

    def add_many(self, X_local: np.ndarray) -> int:
        """Add the columns of ``X_local`` (n_local, k) in order; returns the new rank."""
        X_local = np.asarray(X_local, dtype=np.float64)
        if X_local.ndim != 2:
            raise ValueError(f"IncrementalSVD.add_many: X must be 2-D, got shape {X_local.shape}")
        for j in range(X_local.shape[1]):
            self.add(X_local[:, j])
        return self.rank

    def check_orthogonality(self) -> float:
        """``max|U^T M U - I|`` (collective); re-orthonormalizes U if above ``orth_tol``."""
        if self._U is None or self.rank == 0:
            return 0.0
        err = float(np.max(np.abs(self._M.gram(self._U) - np.eye(self.rank))))
        if err > self.orth_tol:
            # U = Q R  ->  U S V^T = Q (R S V^T); re-diagonalize the small factor.
            Q = cholqr(self._U, product=self._M, comm=self.comm)
            R = self._M.gram(Q, self._U)
            Ur, Sr, Vrt = sla.svd(R * self._S, full_matrices=False, check_finite=False)
            self._set(Q @ Ur, Sr, self._V @ Vrt.T, owned=True)
        return err

    def _set(self, U: np.ndarray, S: np.ndarray, V: np.ndarray, owned: bool = False) -> None:
        """Store the factors, truncated to ``max_rank``, with the pod sign convention.

        ``owned``: U is a temporary of this object, so the signs are applied in place (U
        can be large: 1.7 GB for the internal-variable basis of a 10^5-dof blade)."""
        keep = S.size if self.max_rank is None else min(S.size, self.max_rank)
        U, S, V = U[:, :keep], S[:keep], V[:, :keep]
        signs = _canonical_signs(V.T)
        if np.all(signs > 0):
            self._U, self._S, self._V = U, S, V
        elif owned:
            for i in range(0, U.shape[0], 1 << 15):               # blocks of rows
                U[i:i + (1 << 15)] *= signs
            self._U, self._S, self._V = U, S, V * signs
        else:
            self._U, self._S, self._V = U * signs, S, V * signs

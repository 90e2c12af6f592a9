"""Small row-block helpers for :mod:`rom.interp` (private).

Row-block convention: each rank owns the contiguous global rows ``[lo, hi)`` of every
distributed vector or matrix; matrices are local CSR row blocks with *global* column
indices. ``comm=None`` means serial.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import scipy.sparse as sp
import scipy.sparse.linalg as spla
from mpi4py import MPI

from ..parallel import as_comm, raise_if_failed

__all__ = ["GatheredSolver", "allsum", "as_local_csr", "check", "gather_rows", "offsets_of"]


def check(message: str | None, comm: MPI.Comm | None) -> None:
    """Raise ``ValueError`` on every rank if ``message`` is set on any rank
    (:func:`rom.parallel.raise_if_failed`)."""
    raise_if_failed(message, comm, ValueError)


def allsum(a: Any, comm: MPI.Comm | None) -> np.ndarray:
    """Elementwise sum of a float array over ranks (a new array, replicated)."""
    comm = as_comm(comm)
    a = np.array(a, dtype=np.float64, copy=True, order="C")
    if comm.size > 1:
        comm.Allreduce(MPI.IN_PLACE, a, op=MPI.SUM)
    return a


def offsets_of(n_local: int, comm: MPI.Comm | None) -> np.ndarray:
    """Global row offsets ``(size + 1,)`` from each rank's local row count."""
    comm = as_comm(comm)
    counts = np.array(comm.allgather(int(n_local)) if comm.size > 1 else [int(n_local)])
    return np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)


def gather_rows(X: np.ndarray, comm: MPI.Comm | None) -> np.ndarray:
    """All row blocks stacked in rank order, on every rank: ``(N, ...)``."""
    comm = as_comm(comm)
    X = np.ascontiguousarray(X, dtype=np.float64)
    if comm.size == 1:
        return X
    tail = X.shape[1:]
    width = int(np.prod(tail)) if tail else 1
    rows = np.array(comm.allgather(X.shape[0]), dtype=np.int64)
    counts = rows * width
    displs = np.concatenate([[0], np.cumsum(counts)[:-1]])
    out = np.empty((int(rows.sum()),) + tail)
    comm.Allgatherv(X, [out, counts, displs, MPI.DOUBLE])
    return out


def from_petsc(mat: Any) -> sp.csr_matrix:
    """The local row block of a ``petsc4py.PETSc.Mat`` (AIJ) as scipy CSR, global columns.

    petsc4py is imported lazily, only when a PETSc object is actually passed.
    """
    from petsc4py import PETSc  # noqa: F401  (lazy: only the fom layer needs it)

    indptr, indices, data = mat.getValuesCSR()
    n_local = mat.getLocalSize()[0]
    n_cols = mat.getSize()[1]
    return sp.csr_matrix((np.array(data, dtype=np.float64), np.array(indices),
                          np.array(indptr)), shape=(n_local, n_cols))


def as_local_csr(A: Any, what: str) -> sp.csr_matrix:
    """A scipy CSR row block (sorted indices, duplicates summed) from CSR/sparse/dense/PETSc."""
    if type(A).__module__.startswith("petsc4py"):
        A = from_petsc(A)
    if sp.issparse(A):
        A = sp.csr_matrix(A, dtype=np.float64)
    elif isinstance(A, np.ndarray) and A.ndim == 2:
        A = sp.csr_matrix(A.astype(np.float64))
    else:
        raise ValueError(f"{what}: expected a scipy sparse matrix, a 2-D array or a PETSc Mat, "
                         f"got {type(A).__name__}")
    if not A.has_canonical_format:
        A = A.copy()
        A.sum_duplicates()
        A.sort_indices()
    return A


class GatheredSolver:
    """Direct solver for a distributed square matrix: every rank factorizes the whole matrix.

    The fallback when the user gives no solver: the CSR row blocks are all-gathered and
    factorized by SuperLU on every rank (``O(N)`` memory per rank; for tests, examples and
    problems of moderate size).

    Parameters
    ----------
    A_local : (n_local, N) CSR row block with global columns
    comm : communicator (``None``: serial)
    """

    def __init__(self, A_local: sp.csr_matrix, comm: MPI.Comm | None):
        self.comm = as_comm(comm)
        A_local = sp.csr_matrix(A_local)
        self.offsets = offsets_of(A_local.shape[0], self.comm)
        n = int(self.offsets[-1])
        if A_local.shape[1] != n:
            raise ValueError(f"solver: matrix has {A_local.shape[1]} columns for {n} global rows")
        if self.comm.size > 1:
            blocks = self.comm.allgather(A_local)
            A = sp.vstack(blocks, format="csc")
        else:
            A = A_local.tocsc()
        self.lu = spla.splu(A)

    def solve(self, b_local: np.ndarray) -> np.ndarray:
        """``(A^{-1} b)`` local rows, for ``b_local`` of shape ``(n_local,)`` or ``(n_local, k)``."""
        b = gather_rows(b_local, self.comm)
        x = self.lu.solve(b)
        lo, hi = self.offsets[self.comm.rank], self.offsets[self.comm.rank + 1]
        return np.ascontiguousarray(x[lo:hi])

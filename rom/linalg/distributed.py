"""Row-block distributed arrays: offsets, Gram matrices, gathers and inner-product matrices.

A distributed matrix of N global rows is held as one contiguous block of rows per
rank (a numpy array ``n_local x m``) plus a communicator; ``comm=None`` is serial.
Every function here is collective over ``comm``: all ranks call it, in the same order.

Products (``product=`` arguments) define the inner product ``<x, y>_M = x^T M y``:

- ``None``: Euclidean;
- 1-D array ``(n_local,)``: local diagonal weights (lumped mass), all positive;
- scipy sparse (or dense) ``(n_local, N)``: this rank's rows of a global SPD matrix;
  the remote rows of ``X`` it needs are fetched with one ``Alltoallv`` per product;
- scipy sparse (or dense) ``(n_local, n_local)``: this rank's diagonal block of a
  block-diagonal SPD matrix (no communication);
- a callable ``f(X_local) -> (M X)_local`` (collective: it does its own communication).
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import scipy.sparse as sp
from mpi4py import MPI

from ..parallel import as_comm, raise_if_failed, row_offsets

__all__ = [
    "Product",
    "apply_product",
    "as_float_array",
    "as_product",
    "gather_rows",
    "global_offsets",
    "gram",
    "raise_collectively",
]


def global_offsets(n_local: int, comm: MPI.Comm | None = None) -> np.ndarray:
    """Offsets ``(size + 1,)`` of the row blocks: rank ``r`` holds global rows ``[o[r], o[r+1])``."""
    return row_offsets(n_local, comm)


def raise_collectively(message: str | None, comm: MPI.Comm | None,
                       exc: type[Exception] = ValueError) -> None:
    """Raise ``exc`` on *every* rank if ``message`` is set on *any* rank (one allgather).

    Keeps ranks from deadlocking when only some of them detect a mistake
    (:func:`rom.parallel.raise_if_failed`).
    """
    raise_if_failed(message, comm, exc)


def as_float_array(X: Any, name: str = "X", ndim: int = 2) -> np.ndarray:
    """``X`` as a float64 array without copying when it already is one (C or F order)."""
    X = np.asarray(X)
    if X.ndim != ndim:
        raise ValueError(f"{name} must be a {ndim}-D array, got shape {X.shape}")
    if X.dtype != np.float64 or not (X.flags.c_contiguous or X.flags.f_contiguous):
        if not np.issubdtype(X.dtype, np.number) or np.iscomplexobj(X):
            raise ValueError(f"{name} must be real numeric, got dtype {X.dtype}")
        X = np.ascontiguousarray(X, dtype=np.float64)
    return X


def gram(X: np.ndarray, Y: np.ndarray | None = None, comm: MPI.Comm | None = None) -> np.ndarray:
    """Global ``X^T Y`` of row blocks with one ``Allreduce``.

    Parameters
    ----------
    X : (n_local, k) local rows
    Y : (n_local, l) local rows, default ``X`` (then the symmetric BLAS ``syrk`` is used)
    comm : communicator, ``None`` for serial

    Returns
    -------
    (k, l) array, identical on every rank.
    """
    comm = as_comm(comm)
    G = X.T @ X if Y is None else X.T @ Y
    G = np.ascontiguousarray(G)
    if comm.size > 1:
        comm.Allreduce(MPI.IN_PLACE, G, op=MPI.SUM)
    return G


def gather_rows(X: np.ndarray, comm: MPI.Comm | None = None,
                root: int | None = None) -> np.ndarray | None:
    """Stack the row blocks of all ranks (for tests and small data).

    Returns the global ``(N, m)`` array on every rank (``root=None``) or on ``root`` only
    (``None`` elsewhere). ``X`` may be 1-D (then the result is 1-D).
    """
    comm = as_comm(comm)
    if comm.size == 1:
        return np.array(X)
    X = np.ascontiguousarray(X, dtype=np.float64)
    tail = X.shape[1:]
    width = int(np.prod(tail))
    rows = np.array(comm.allgather(X.shape[0]), dtype=np.int64)
    counts = rows * width
    displs = np.concatenate([[0], np.cumsum(counts)[:-1]])
    receive = root is None or comm.rank == root
    out = np.empty((int(rows.sum()),) + tail) if receive else None
    if root is None:
        comm.Allgatherv(X, [out, counts, displs, MPI.DOUBLE])
    else:
        comm.Gatherv(X, [out, counts, displs, MPI.DOUBLE] if receive else None, root=root)
    return out


@dataclass
class _RemoteRows:
    """Communication plan of a row-block sparse product: which rows go where."""

    send_rows: np.ndarray          # local row indices to send, grouped by destination rank
    send_counts: np.ndarray        # rows sent to each rank
    recv_counts: np.ndarray        # rows received from each rank
    local: sp.csr_matrix           # (n_local, n_local): columns owned by this rank
    remote: sp.csr_matrix          # (n_local, n_recv): columns of the received rows

    def apply(self, X: np.ndarray, comm: MPI.Comm) -> np.ndarray:
        m = X.shape[1]
        send = np.ascontiguousarray(X[self.send_rows])
        recv = np.empty((int(self.recv_counts.sum()), m))
        sc, rc = self.send_counts * m, self.recv_counts * m
        sd = np.concatenate([[0], np.cumsum(sc)[:-1]])
        rd = np.concatenate([[0], np.cumsum(rc)[:-1]])
        comm.Alltoallv([send, sc, sd, MPI.DOUBLE], [recv, rc, rd, MPI.DOUBLE])
        out = self.local @ X
        if self.remote.shape[1]:
            out += self.remote @ recv
        return np.asarray(out)


def _plan_remote_rows(M: sp.csr_matrix, offsets: np.ndarray, comm: MPI.Comm) -> _RemoteRows:
    """Find the global columns of ``M`` owned by other ranks and set up their exchange."""
    rank, size = comm.rank, comm.size
    lo, hi = int(offsets[rank]), int(offsets[rank + 1])
    coo = M.tocoo()                                                     # M is not modified
    keep = coo.data != 0
    row, col, data = coo.row[keep], coo.col[keep], coo.data[keep]
    cols = np.unique(col)
    remote_cols = cols[(cols < lo) | (cols >= hi)]                      # sorted -> grouped by owner
    owner = np.searchsorted(offsets, remote_cols, side="right") - 1
    want = np.bincount(owner, minlength=size).astype(np.int64)          # rows I need from each rank
    give = np.empty(size, dtype=np.int64)
    comm.Alltoall(want, give)                                           # rows each rank needs from me
    gdispl = np.concatenate([[0], np.cumsum(give)[:-1]])
    wdispl = np.concatenate([[0], np.cumsum(want)[:-1]])
    requested = np.empty(int(give.sum()), dtype=np.int64)
    comm.Alltoallv([remote_cols.astype(np.int64), want, wdispl, MPI.INT64_T],
                   [requested, give, gdispl, MPI.INT64_T])
    # Split M into owned columns and received columns (in received order = remote_cols order).
    own = (col >= lo) & (col < hi)
    n_local = hi - lo
    local = sp.csr_matrix((data[own], (row[own], col[own] - lo)), shape=(n_local, n_local))
    pos = np.searchsorted(remote_cols, col[~own])
    remote = sp.csr_matrix((data[~own], (row[~own], pos)), shape=(n_local, remote_cols.size))
    return _RemoteRows(requested - lo, give, want, local, remote)


@dataclass
class Product:
    """A validated inner-product matrix ``M`` on row blocks (see :func:`as_product`).

    Attributes
    ----------
    kind : ``"euclidean"``, ``"diagonal"``, ``"rowblock"``, ``"block"`` or ``"callable"``
    weights : (n_local,) positive weights for ``"diagonal"``, else ``None``
    """

    kind: str
    comm: MPI.Comm
    weights: np.ndarray | None = None
    matrix: Any = None
    func: Callable[[np.ndarray], np.ndarray] | None = None
    _plan: _RemoteRows | None = field(default=None, repr=False)

    @property
    def is_euclidean(self) -> bool:
        return self.kind == "euclidean"

    def apply(self, X: np.ndarray) -> np.ndarray:
        """``(M X)_local`` for ``X`` of shape ``(n_local,)`` or ``(n_local, k)`` (collective)."""
        vec = X.ndim == 1
        X2 = X[:, None] if vec else X
        if self.kind == "euclidean":
            out = X2
        elif self.kind == "diagonal":
            out = self.weights[:, None] * X2
        elif self.kind == "block":
            out = np.asarray(self.matrix @ X2)
        elif self.kind == "rowblock":
            out = self._plan.apply(np.ascontiguousarray(X2), self.comm)
        else:
            out = np.asarray(self.func(X2))
            if out.shape != X2.shape:
                raise ValueError(f"product callable returned shape {out.shape} for input {X2.shape}")
        return out[:, 0] if vec else out

    def gram(self, X: np.ndarray, Y: np.ndarray | None = None) -> np.ndarray:
        """Global ``X^T M Y`` (``Y`` defaults to ``X``; symmetric result then)."""
        if self.kind == "euclidean":
            return gram(X, Y, self.comm)
        if self.kind == "diagonal" and Y is None:
            Xs = np.sqrt(self.weights)[:, None] * X
            return gram(Xs, None, self.comm)
        G = gram(X, self.apply(X if Y is None else Y), self.comm)
        return 0.5 * (G + G.T) if Y is None else G


def as_product(product: Any, n_local: int, comm: MPI.Comm | None = None) -> Product:
    """Validate a ``product=`` argument for row blocks of ``n_local`` rows (collective).

    Raises
    ------
    ValueError
        On every rank, naming the rank, if any rank's product has the wrong shape, non-finite
        or non-positive weights, or is of an unsupported type.
    """
    comm = as_comm(comm)
    if isinstance(product, Product):
        return product
    if product is None:
        return Product("euclidean", comm)
    if callable(product):
        return Product("callable", comm, func=product)
    offsets = global_offsets(n_local, comm)
    n_global = int(offsets[-1])
    error, kind, matrix, weights = None, None, None, None
    if sp.issparse(product) or (isinstance(product, np.ndarray) and product.ndim == 2):
        matrix = sp.csr_matrix(product)
        rows, cols = matrix.shape
        if rows != n_local or cols not in (n_local, n_global):
            error = (f"product has shape {matrix.shape}; expected ({n_local}, {n_global}) "
                     f"(local rows of the global matrix) or ({n_local}, {n_local}) "
                     f"(local diagonal block) for {n_local} local rows of {n_global}")
        elif not np.all(np.isfinite(matrix.data)):
            error = "product matrix contains NaN or inf"
    elif isinstance(product, (np.ndarray, list, tuple)):
        weights = np.asarray(product, dtype=np.float64)
        if weights.shape != (n_local,):
            error = f"product weights have shape {weights.shape}; expected ({n_local},) (local rows)"
        elif not np.all(np.isfinite(weights)) or np.any(weights <= 0):
            bad = int(np.flatnonzero(~(weights > 0) | ~np.isfinite(weights))[0])
            error = (f"product weights must be finite and positive; local row {bad} "
                     f"(global row {int(offsets[comm.rank]) + bad}) has {weights[bad]}")
        kind = "diagonal"
    else:
        error = (f"unsupported product of type {type(product).__name__}: use None, 1-D weights, "
                 "a scipy sparse matrix or a callable")
    raise_collectively(error, comm)
    if kind == "diagonal":
        return Product("diagonal", comm, weights=weights)
    # All ranks must agree on "rows of a global matrix" versus "block diagonal".
    is_global = matrix.shape[1] == n_global
    flags = comm.allgather(is_global)
    shapes_local = comm.allgather(matrix.shape[1] == n_local)
    if all(flags) and comm.size > 1 and not all(shapes_local):
        return Product("rowblock", comm, matrix=matrix,
                       _plan=_plan_remote_rows(matrix, offsets, comm))
    if all(shapes_local):
        return Product("block", comm, matrix=matrix)
    if all(flags):
        return Product("block", comm, matrix=matrix)           # serial: (N, N)
    raise ValueError("product row blocks disagree across ranks: some are (n_local, N) and some "
                     f"(n_local, n_local); local shapes {comm.allgather(matrix.shape)}")


def apply_product(M: Any, X: np.ndarray, comm: MPI.Comm | None = None) -> np.ndarray:
    """``(M X)_local`` for any supported product (collective; see the module docstring).

    Parameters
    ----------
    M : product specification (``None``, weights, sparse row block, sparse block, callable)
    X : (n_local, k) or (n_local,) local rows
    comm : communicator, ``None`` for serial

    Returns
    -------
    Array of the shape of ``X``. With a sparse row block ``(n_local, N)`` the remote rows
    of ``X`` that its nonzero columns need are fetched with one ``Alltoallv`` (plus a small
    set-up exchange; build the product once with :func:`as_product` to reuse the plan).
    """
    return as_product(M, X.shape[0], comm).apply(X)

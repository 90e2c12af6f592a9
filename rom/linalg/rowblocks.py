"""Full-size matrices distributed by contiguous blocks of rows: the one place for the
row-block MPI helpers (fetch rows from their owners, rows at a few global indices on every
rank, send rows to their owners, gather in bounded blocks for writing) and
:class:`RowBlocks`, the type of every full-size array of a reduced model.

A matrix of N global rows is split over the ranks of a communicator by ``offsets``
(size + 1,): rank r holds rows ``offsets[r]:offsets[r + 1]``. Every function here is
collective over ``comm`` (``None``: serial) unless it says otherwise.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
from mpi4py import MPI

from ..parallel import allreduce_sum, as_comm, row_offsets

__all__ = [
    "WRITE_BYTES",
    "PointColumns",
    "RowBlocks",
    "entity_rows",
    "fetch_rows",
    "gather_blocks",
    "rows_at",
    "send_to_owners",
]

#: bytes of one block of rows gathered on rank 0 when writing a file
WRITE_BYTES = 1 << 27


def entity_rows(entities: np.ndarray, n_components: int) -> np.ndarray:
    """Rows of ``entities`` (points or nodes) in entity-major storage, ``row = entity *
    n_components + component``: entity by entity, each one's components in order."""
    k = int(n_components)
    return (np.asarray(entities, np.int64)[:, None] * k + np.arange(k)).ravel()


def _displ(counts: np.ndarray) -> np.ndarray:
    return np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(np.int64)


def _owner(offsets: np.ndarray, rows: np.ndarray) -> np.ndarray:
    return np.searchsorted(offsets, rows, side="right") - 1


def fetch_rows(local: np.ndarray, offsets: np.ndarray, wanted: np.ndarray,
               comm: MPI.Comm | None) -> np.ndarray:
    """Rows ``wanted`` (global indices, any order, each rank its own) of a row-distributed
    array: each rank asks the owners for the rows it needs (two ``Alltoallv``). Returns
    ``(len(wanted),) + local.shape[1:]``."""
    comm = as_comm(comm)
    wanted = np.asarray(wanted, np.int64)
    tail = local.shape[1:]
    if comm.size == 1:
        return np.asarray(local)[wanted]
    order = np.argsort(wanted, kind="stable")
    w = wanted[order]
    width = int(np.prod(tail))
    want = np.bincount(_owner(offsets, w), minlength=comm.size).astype(np.int64)
    give = np.empty(comm.size, np.int64)
    comm.Alltoall(want, give)
    asked = np.empty(int(give.sum()), np.int64)
    comm.Alltoallv([w, want, _displ(want), MPI.INT64_T],
                   [asked, give, _displ(give), MPI.INT64_T])
    send = np.ascontiguousarray(np.asarray(local, float).reshape(local.shape[0], -1)
                                [asked - offsets[comm.rank]])
    recv = np.empty((w.size, width))
    comm.Alltoallv([send, give * width, _displ(give * width), MPI.DOUBLE],
                   [recv, want * width, _displ(want * width), MPI.DOUBLE])
    out = np.empty_like(recv)
    out[order] = recv
    return out.reshape((wanted.size,) + tail)


def _columns(local: np.ndarray | list[np.ndarray]) -> list[np.ndarray]:
    """A row-distributed array given whole or as column blocks: its column blocks."""
    return list(local) if isinstance(local, (list, tuple)) else [local]


def rows_at(local: np.ndarray | list[np.ndarray], offsets: np.ndarray, rows: np.ndarray,
            comm: MPI.Comm | None) -> np.ndarray:
    """Rows ``rows`` (global indices, the same on every rank) of a row-distributed array
    (``local``: this rank's rows, or a list of column blocks of them, side by side), on
    every rank: owners fill, one ``Allreduce`` sums (identical on every rank). For a few
    rows (reduced points); O(len(rows) width) memory, no copy of the local rows."""
    comm = as_comm(comm)
    rows = np.asarray(rows, np.int64)
    bs = _columns(local)
    r0 = int(offsets[comm.rank])
    mine = (rows >= r0) & (rows < r0 + bs[0].shape[0])
    part = np.concatenate([b[rows[mine] - r0] for b in bs], axis=1) if len(bs) > 1 \
        else bs[0][rows[mine] - r0]
    out = np.zeros((rows.size,) + part.shape[1:])
    out[mine] = part
    return allreduce_sum(out, comm)


def send_to_owners(values: np.ndarray, rows: np.ndarray, offsets: np.ndarray,
                   comm: MPI.Comm | None) -> np.ndarray:
    """Redistribute rows held anywhere to their owners (one ``Alltoallv``): ``values``
    (k, ...) are the rows ``rows`` (k,) (global, each held by exactly one rank); returns
    this rank's block ``(offsets[r+1] - offsets[r], ...)``. The move of a full-order field
    from PETSc's ownership to the model's row blocks."""
    comm = as_comm(comm)
    rows = np.asarray(rows, np.int64)
    values = np.asarray(values, float)
    tail = values.shape[1:]
    width = int(np.prod(tail))
    r0, r1 = int(offsets[comm.rank]), int(offsets[comm.rank + 1])
    out = np.empty((r1 - r0,) + tail)
    if comm.size == 1:
        out[rows - r0] = values
        return out
    order = np.argsort(rows, kind="stable")
    rows, values = rows[order], values[order].reshape(rows.size, -1)
    send = np.bincount(_owner(offsets, rows), minlength=comm.size).astype(np.int64)
    recv = np.empty(comm.size, np.int64)
    comm.Alltoall(send, recv)
    got = np.empty(int(recv.sum()), np.int64)
    comm.Alltoallv([rows, send, _displ(send), MPI.INT64_T], [got, recv, _displ(recv),
                                                             MPI.INT64_T])
    data = np.empty((got.size, width))
    comm.Alltoallv([np.ascontiguousarray(values), send * width, _displ(send * width),
                    MPI.DOUBLE], [data, recv * width, _displ(recv * width), MPI.DOUBLE])
    if got.size != r1 - r0 or np.unique(got).size != got.size:
        raise ValueError(f"send_to_owners: rank {comm.rank} got {got.size} rows for its "
                         f"block of {r1 - r0} (rows missing or held twice)")
    out.reshape(r1 - r0, -1)[got - r0] = data
    return out


def gather_blocks(local: np.ndarray | list[np.ndarray], comm: MPI.Comm | None,
                  block_bytes: int | None = None):
    """Yield ``(a, b, rows)`` for consecutive blocks of global rows ``a:b`` of a
    row-distributed array (``local``: this rank's rows, or a list of column blocks of
    them), ``rows`` the gathered block on rank 0 (None elsewhere), each block at most
    ``block_bytes`` (default :data:`WRITE_BYTES`): writing a file in global row order with
    bounded memory. Collective (every rank iterates to the end)."""
    comm = as_comm(comm)
    block_bytes = WRITE_BYTES if block_bytes is None else int(block_bytes)
    bs = _columns(local)
    off = row_offsets(bs[0].shape[0], comm)
    n = int(off[-1])
    tail = bs[0].shape[1:] if len(bs) == 1 else (sum(b.shape[1] for b in bs),)
    width = max(1, int(np.prod(tail)))
    step = max(1, block_bytes // (8 * width))
    r0, r1 = int(off[comm.rank]), int(off[comm.rank + 1])
    for a in range(0, n, step):  # loop over blocks of global rows
        b = min(n, a + step)
        lo, hi = min(max(r0, a), b), min(max(r1, a), b)
        part = np.ascontiguousarray(np.concatenate([b[lo - r0:hi - r0] for b in bs], axis=1)
                                    if len(bs) > 1 else bs[0][lo - r0:hi - r0], dtype=np.float64)
        if comm.size == 1:
            yield a, b, part
            continue
        counts = (np.clip(off[1:], a, b) - np.clip(off[:-1], a, b)) * width
        buf = np.empty((b - a,) + tail) if comm.rank == 0 else None
        comm.Gatherv(part, [buf, counts, _displ(counts), MPI.DOUBLE]
                     if comm.rank == 0 else None, root=0)
        yield a, b, buf


class PointColumns:
    """The columns of row blocks whose rows are ``n_comp`` values per point, as an array
    ``(n_cols, n_points, n_comp)`` indexed ``[:, points, :]`` (a slice or an index array
    of points): each selection joins the column blocks for those points only, so what
    streams over points (the ECM's integrands) never copies the whole matrix."""

    def __init__(self, blocks: list[np.ndarray], n_comp: int):
        n = blocks[0].shape[0]
        if n % n_comp:
            raise ValueError(f"{n} rows are not {n_comp} values per point")
        self._points = [b.reshape(n // n_comp, n_comp, b.shape[1]) for b in blocks]
        self.shape = (sum(b.shape[1] for b in blocks), n // n_comp, n_comp)
        self.ndim, self.dtype = 3, np.result_type(*blocks)

    def __getitem__(self, key) -> np.ndarray:
        if not (isinstance(key, tuple) and len(key) == 3 and key[0] == slice(None)
                and key[2] == slice(None)):
            raise IndexError("PointColumns supports [:, points, :] only")
        parts = [b[key[1]] for b in self._points]           # (p, n_comp, k_i)
        return np.concatenate(parts, axis=2).transpose(2, 0, 1)


class RowBlocks:
    """A full-size matrix (N, k) split by rows over a communicator, held by each rank as
    column blocks of its rows: the training columns, then the columns appended by
    enrichments (appending copies only the appended block, never the training one).

    A matrix read from a file is lazy: its rows are read on first use of :attr:`blocks`
    (each rank its own rows); :meth:`rows` of a lazy matrix reads only the rows asked for.

    Parameters
    ----------
    blocks : this rank's rows of the column blocks, each (n_local, k_i)
    offsets : (size + 1,) global row offsets of the ranks
    comm : communicator (``None``: serial)
    name : what it is (error messages)
    """

    def __init__(self, blocks: list[np.ndarray] | None, offsets: np.ndarray,
                 comm: MPI.Comm | None = None, *, name: str = "", source=None,
                 n_cols: int | None = None):
        self.comm = as_comm(comm)
        self.offsets = np.asarray(offsets, np.int64)
        if self.offsets.size != self.comm.size + 1:
            raise ValueError(f"{name}: {self.offsets.size - 1} row blocks for "
                             f"{self.comm.size} ranks")
        self.name = name
        self._blocks = None if blocks is None else [np.asarray(b) for b in blocks]
        self._source = source             # (path, dataset name) of a lazy matrix
        self._n_cols = n_cols
        if self._blocks is not None and self._blocks[0].shape[0] != self.n_local:
            raise ValueError(f"{name}: {self._blocks[0].shape[0]} local rows, the offsets "
                             f"give {self.n_local} to rank {self.comm.rank}")

    @classmethod
    def from_local(cls, local: np.ndarray, comm: MPI.Comm | None = None, *,
                   name: str = "") -> RowBlocks:
        """From each rank's block of rows (collective: one allgather of the row counts)."""
        local = np.asarray(local)
        if local.ndim == 1:
            local = local[:, None]
        return cls([local], row_offsets(local.shape[0], comm), comm, name=name)

    @classmethod
    def lazy(cls, path: str | Path, dataset: str, offsets: np.ndarray,
             comm: MPI.Comm | None = None, *, n_cols: int) -> RowBlocks:
        """The rows of ``dataset`` in the HDF5 file ``path`` given by ``offsets``, read on
        first use (not collective)."""
        return cls(None, offsets, comm, name=f"{path}:{dataset}",
                   source=(str(path), dataset), n_cols=n_cols)

    # ---------------------------------------------------------------- sizes
    @property
    def n_local(self) -> int:
        r = self.comm.rank
        return int(self.offsets[r + 1] - self.offsets[r])

    @property
    def n_rows(self) -> int:
        return int(self.offsets[-1])

    @property
    def n_cols(self) -> int:
        if self._blocks is None:
            return int(self._n_cols)
        return sum(b.shape[1] for b in self._blocks)

    @property
    def shape(self) -> tuple[int, int]:
        return self.n_rows, self.n_cols

    @property
    def row_range(self) -> tuple[int, int]:
        r = self.comm.rank
        return int(self.offsets[r]), int(self.offsets[r + 1])

    @property
    def loaded(self) -> bool:
        """Whether this rank's rows are in memory."""
        return self._blocks is not None

    # ---------------------------------------------------------------- data
    @property
    def blocks(self) -> list[np.ndarray]:
        """This rank's rows of the column blocks (reads them if lazy)."""
        if self._blocks is None:
            import h5py
            path, dataset = self._source
            r0, r1 = self.row_range
            with h5py.File(path, "r") as f:
                rows = np.asarray(f[dataset][r0:r1], float).reshape(r1 - r0, -1)
            bad = ~np.isfinite(rows)
            if bad.any():
                from ..parallel import UserError
                raise UserError(f"{path}: dataset {dataset} holds {int(bad.sum())} NaN or Inf "
                                f"value(s), the first in row {r0 + int(np.argmax(bad.any(1)))}"
                                "; the file is damaged")
            self._blocks = [rows]
        return self._blocks

    @property
    def local(self) -> np.ndarray:
        """This rank's rows (n_local, k) as one array (a copy when columns were appended)."""
        bs = self.blocks
        return bs[0] if len(bs) == 1 else np.hstack(bs)

    def as_points(self, n_comp: int) -> PointColumns:
        """This rank's rows, ``n_comp`` per point, seen as an (n_cols, n_points, n_comp)
        array read one selection of points at a time (:class:`PointColumns`)."""
        return PointColumns(self.blocks, n_comp)

    @property
    def nbytes(self) -> int:
        """Bytes of this rank's rows in memory."""
        return 0 if self._blocks is None else sum(b.nbytes for b in self._blocks)

    def dot(self, c: np.ndarray) -> np.ndarray:
        """This rank's rows of ``B[:, :len(c)] @ c``: (n_local,). Not collective."""
        c = np.asarray(c, float)
        out, start = np.zeros(self.n_local), 0
        for b in self.blocks:  # loop over the column blocks
            k = min(b.shape[1], c.size - start)
            if k <= 0:
                break
            out += b[:, :k] @ c[start:start + k]
            start += k
        return out

    def tdot(self, x: np.ndarray) -> np.ndarray:
        """``B^T x`` (k,) for ``x`` this rank's rows of a full-size vector (one Allreduce)."""
        x = np.asarray(x, float)
        out = allreduce_sum(np.vstack([b.T @ x.reshape(self.n_local, -1) for b in self.blocks]),
                            self.comm)
        return out[:, 0] if x.ndim == 1 else out

    def rows(self, rows: np.ndarray, k: int | None = None) -> np.ndarray:
        """Global rows ``rows`` (the same on every rank) on every rank, the first ``k``
        columns: (len(rows), k). Collective, except for a lazy matrix (read from the file
        by every rank)."""
        rows = np.asarray(rows, np.int64)
        if self._blocks is None:
            import h5py
            order = np.argsort(rows)
            uniq, inv = np.unique(rows[order], return_inverse=True)
            with h5py.File(self._source[0], "r") as f:
                got = np.asarray(f[self._source[1]][uniq], float).reshape(uniq.size, -1)
            out = np.empty((rows.size, got.shape[1]))
            out[order] = got[inv]
        else:
            out = rows_at(self.blocks, self.offsets, rows, self.comm)
        return out if k is None else out[:, :k]

    def with_local(self, local: np.ndarray) -> RowBlocks:
        """The same row split with other local rows (e.g. an updated basis)."""
        local = np.asarray(local)
        return RowBlocks([local if local.ndim == 2 else local[:, None]], self.offsets,
                         self.comm, name=self.name)

    def appended(self, column: np.ndarray) -> RowBlocks:
        """A new matrix with this rank's rows of one more column (the training block is
        shared, the block of appended columns copied: O(N e / P))."""
        column = np.asarray(column, float).reshape(self.n_local, 1)
        bs = self.blocks
        tail = column if len(bs) == 1 else np.hstack([bs[1], column])
        return RowBlocks([bs[0], tail], self.offsets, self.comm, name=self.name)

    def gather(self) -> np.ndarray:
        """The whole matrix on every rank (tests, small matrices)."""
        from .distributed import gather_rows
        return gather_rows(self.local, self.comm)

    def write(self, dataset) -> str | None:
        """Write into ``dataset`` (created with the whole shape on rank 0 beforehand;
        ``None`` elsewhere) in global row order, gathered in bounded blocks. Collective;
        returns rank 0's error message, if any."""
        error = None
        for a, b, buf in gather_blocks(self.blocks, self.comm):  # loop over row blocks
            if dataset is not None and error is None:
                try:
                    dataset[a:b] = buf.reshape((b - a,) + dataset.shape[1:])
                except Exception as exc:  # noqa: BLE001 - reported on every rank
                    error = f"writing {dataset.name}: {type(exc).__name__}: {exc}"
        return error

"""Private helpers of :mod:`rom.hyper`: input checks, global argmax, owner gathers.

Distributed data follow one convention: a matrix whose *points* (or rows of a
basis) are split over the ranks is held as this rank's contiguous block, in
global order (rank 0 first). Every function here is collective over ``comm``.
"""
from __future__ import annotations

from typing import Any

import numpy as np
from mpi4py import MPI

from ..parallel import raise_if_failed, row_offsets

#: Default relative tie tolerance of the greedy selections: values within
#: ``TIE_RTOL * |max|`` of the maximum are ties, broken by the smallest global index.
TIE_RTOL = 1e-10


def raise_collective(message: str | None, comm: MPI.Comm, exc: type = ValueError) -> None:
    """Raise ``exc`` on every rank if ``message`` is set on any rank
    (:func:`rom.parallel.raise_if_failed`: the exception carries ``collective = True`` so
    that :func:`rom.parallel.abort_on_error` prints it once)."""
    raise_if_failed(message, comm, exc)


def float_array(x: Any, name: str, ndim: int) -> np.ndarray:
    """``x`` as a float64 array of ``ndim`` dimensions (no copy when already one)."""
    a = np.asarray(x)
    if a.ndim != ndim:
        raise ValueError(f"{name} must be a {ndim}-D array, got shape {a.shape}")
    if not (np.issubdtype(a.dtype, np.number) or a.dtype == bool) or np.iscomplexobj(a):
        raise ValueError(f"{name} must be real numeric, got dtype {a.dtype}")
    return np.asarray(a, dtype=np.float64)


def nonfinite_message(a: np.ndarray, name: str, axis_names: tuple[str, ...],
                      offsets: tuple[int, ...] | None = None) -> str | None:
    """Message locating the first NaN/inf of ``a`` (``None`` if all finite).

    ``axis_names`` names each axis; ``offsets`` (same length) shifts local to global
    indices for the distributed axes.
    """
    with np.errstate(all="ignore"):
        if np.isfinite(a.sum()):              # one cheap pass: NaN/inf would propagate
            return None
    bad = ~np.isfinite(a)
    if not bad.any():                         # the sum overflowed
        return None
    idx = np.unravel_index(int(np.flatnonzero(bad.ravel())[0]), a.shape)
    offsets = offsets or (0,) * a.ndim
    where = ", ".join(f"{n} {int(i) + int(o)}" for n, i, o in zip(axis_names, idx, offsets))
    return f"{name} contains {a[idx]} at ({where}); every entry must be finite"


def check_tol(tol: float, name: str = "tol", *, upper: float = 1.0) -> float:
    """``tol`` as a float in the open interval ``(0, upper)``."""
    try:
        t = float(tol)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a number in (0, {upper:g}), got {tol!r}") from None
    if not 0.0 < t < upper:
        raise ValueError(f"{name} must be in (0, {upper:g}), got {tol!r}")
    return t


def check_indices(idx: Any, n_global: int, name: str) -> np.ndarray:
    """Global point indices as a unique int64 array in ``[0, n_global)``, order kept."""
    if idx is None:
        return np.zeros(0, dtype=np.int64)
    a = np.asarray(idx)
    if a.size == 0:
        return np.zeros(0, dtype=np.int64)
    if a.ndim != 1 or not np.issubdtype(a.dtype, np.integer):
        raise ValueError(f"{name} must be a 1-D array of integer global point indices, "
                         f"got dtype {a.dtype} and shape {a.shape}")
    a = a.astype(np.int64)
    out = np.flatnonzero((a < 0) | (a >= n_global))
    if out.size:
        raise ValueError(f"{name}[{out[0]}] = {a[out[0]]} is out of range [0, {n_global}) "
                         f"(global point indices over all ranks)")
    _, first = np.unique(a, return_index=True)
    if first.size != a.size:
        dup = a[np.setdiff1d(np.arange(a.size), first)[0]]
        raise ValueError(f"{name} contains the index {dup} more than once")
    return a


def offsets_of(n_local: int, comm: MPI.Comm) -> np.ndarray:
    """Global offsets ``(size + 1,)`` of the contiguous blocks (see :func:`row_offsets`)."""
    return row_offsets(n_local, comm)


def global_argmax(values: np.ndarray, offset: int, comm: MPI.Comm,
                  tie_rtol: float = TIE_RTOL) -> tuple[float, int]:
    """Global maximum of a distributed vector and its index, ties by the smallest global index.

    Parameters
    ----------
    values : (n_local,) this rank's values (``-inf`` marks excluded entries)
    offset : global index of ``values[0]``
    comm : communicator
    tie_rtol : values ``>= max - tie_rtol * |max|`` are ties

    Returns
    -------
    (max value, global index), or ``(-inf, -1)`` when every entry is excluded.
    The answer does not depend on how the vector is split over the ranks, as long
    as each entry is computed identically (to within ``tie_rtol``).
    """
    local = float(values.max()) if values.size else -np.inf
    vmax = local if comm.size == 1 else comm.allreduce(local, op=MPI.MAX)
    if not np.isfinite(vmax):
        return -np.inf, -1
    threshold = vmax - tie_rtol * abs(vmax)
    hits = np.flatnonzero(values >= threshold)
    mine = int(offset + hits[0]) if hits.size else np.iinfo(np.int64).max
    gidx = mine if comm.size == 1 else comm.allreduce(mine, op=MPI.MIN)
    return vmax, gidx


def few_points(n_picked: int, n_points: int) -> bool:
    """True when evaluating ``n_picked`` of ``n_points`` local points one by one (gathering
    their data) beats one streaming pass over all of them: fewer than 1/8 of them."""
    return 8 * n_picked < n_points


def gather_columns(A: np.ndarray, gidx: np.ndarray, offsets: np.ndarray,
                   comm: MPI.Comm) -> np.ndarray:
    """Columns ``gidx`` (global) of a column-distributed ``A`` (k, n_local), on every rank.

    Owners fill their columns, the others zeros, and one ``Allreduce`` sums: the
    result is bitwise identical on every rank and for every split.

    Returns
    -------
    (k, len(gidx)) array.
    """
    gidx = np.asarray(gidx, dtype=np.int64)
    lo, hi = offsets[comm.rank], offsets[comm.rank + 1]
    out = np.zeros((A.shape[0], gidx.size))
    mine = (gidx >= lo) & (gidx < hi)
    if mine.any():
        out[:, mine] = A[:, gidx[mine] - lo]
    if comm.size == 1:
        return out
    total = np.empty_like(out)
    comm.Allreduce(out, total, op=MPI.SUM)
    return total


def gather_rows(U: np.ndarray, gidx: np.ndarray, offsets: np.ndarray,
                comm: MPI.Comm) -> np.ndarray:
    """Rows ``gidx`` (global) of a row-distributed ``U`` (n_local, k), on every rank: (len, k)."""
    return gather_columns(np.asarray(U).T, gidx, offsets, comm).T.copy()


def eig_desc(C: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Eigenpairs of a symmetric PSD matrix, eigenvalues descending and clipped at 0."""
    lam, V = np.linalg.eigh(C)
    return np.clip(lam[::-1], 0.0, None), V[:, ::-1]


def truncation_rank(lam: np.ndarray, tol: float) -> int:
    """Smallest k with ``sqrt(sum_{i>k} lam_i) <= tol sqrt(sum_i lam_i)`` (lam descending).

    ``lam`` are Gram eigenvalues (squared singular values); this is the POD energy criterion.
    """
    tail = np.concatenate([np.cumsum(lam[::-1])[::-1][1:], [0.0]])
    total = lam.sum()
    return int(np.argmax(tail <= tol**2 * total)) + 1 if total > 0 else 1

"""The correlation scan of the ECM greedy: ``argmax_g (G^T r)_g`` over every rank's points.

It is the one step of the greedy that touches all points, once per selected point, so it
runs at memory bandwidth on the smallest matrix that represents the points:

- a float32 copy (half the bytes): every point whose correlation could be the maximum
  given a rigorous bound on the float32 rounding, ``1.01 (k + 2) u32 ||a_g|| ||r||``, is
  re-evaluated exactly, so the chosen point is the float64 argmax;
- a row-compressed matrix ``A = P G`` (P with orthonormal rows): the scan sees ``P r``;
  the part of the true residual it cannot see has norm ``s = ||(I - P^T P) r||`` (known,
  since r is), and each point's truncated column norm ``t_g = ||(I - P^T P) g_g||`` is
  known from the compression, so ``|(G^T r)_g - (A^T P r)_g| <= t_g s``. Every point whose
  bound reaches the maximum gets its *true* correlation: the chosen point is the argmax
  of ``G^T r``, i.e. the NNOMP choice on the full G. Measured: one or two candidates per
  step while the compressed rows see the residual;
- the true correlations of those candidates are computed where the points live (a local
  callback, no communication), so however many there are the cost is at most that of one
  pass over the uncompressed integrands: late in a large greedy, when the residual has
  left the compressed rows, the scan degrades gracefully into the exact scan instead of
  stopping.
"""
from __future__ import annotations

from collections.abc import Callable

import numpy as np
from mpi4py import MPI

_U32 = float(np.finfo(np.float32).eps) / 2
_EPS = float(np.finfo(np.float64).eps)


class Scanner:
    """Correlations of a column-distributed ``A`` (k, n_local) with a replicated residual.

    Parameters
    ----------
    AT : (n_local, k) float64, ``A`` transposed (any layout: the float32 copy keeps it)
    lo : global index of the first local point
    comm : communicator
    float32 : keep a float32 copy (scaled by 1/max|A| against overflow) for the screening
    tail : (n_local,) truncated column norms ``t_g`` when ``A = P G`` is compressed
    """

    def __init__(self, AT: np.ndarray, lo: int, comm: MPI.Comm, float32: bool,
                 tail: np.ndarray | None = None):
        self.AT, self.lo, self.comm = AT, lo, comm
        self.tail = None if tail is None else np.asarray(tail, dtype=float)
        self.k = AT.shape[1]
        self.AT32 = None
        self.norms = np.sqrt(np.einsum("gk,gk->g", AT, AT))
        full = self.norms if tail is None else np.hypot(self.norms, self.tail)
        local = float(full.max(initial=0.0))
        #: largest column norm of the true G over all ranks
        self.colmax = local if comm.size == 1 else comm.allreduce(local, op=MPI.MAX)
        if float32:                           # same branch on every rank (collective calls)
            self.scale = max(float(AT.max(initial=0.0)), -float(AT.min(initial=0.0))) or 1.0
            self.AT32 = np.empty_like(AT, dtype=np.float32, order="K")
            np.multiply(AT, 1.0 / self.scale, out=self.AT32, casting="same_kind")

    def top(self, r: np.ndarray, taken: np.ndarray, tie_rtol: float, count: int = 1,
            slack: float = 0.0, exact: Callable[[np.ndarray], np.ndarray] | None = None
            ) -> tuple[np.ndarray, np.ndarray, int]:
        """The ``count`` largest correlations over the non-taken points of all ranks.

        Parameters
        ----------
        r : (k,) the residual as seen by A (``P r_true`` when compressed)
        taken : (n_local,) points that are not candidates
        tie_rtol : values within ``tie_rtol * |max|`` are ties -> smallest global index
        count : how many points (the largest first); 1 is the NNOMP step
        slack : ``||(I - P^T P) r_true||`` (compressed A only)
        exact : local ``I -> (G^T r_true)[I]`` for increasing local indices I (compressed A;
            not collective)

        Returns
        -------
        ``(values, indices, n_candidates)``: up to ``count`` correlations, largest first, and
        their global indices, identical on every rank (empty when every point is taken);
        ``n_candidates`` = points evaluated exactly on this rank.
        """
        comm = self.comm
        nr = float(np.linalg.norm(r))
        if self.AT32 is not None and nr > 0:
            c = (self.AT32 @ (r / nr).astype(np.float32)).astype(np.float64) * (self.scale * nr)
            err = 1.01 * (self.k + 2) * _U32 * self.norms * nr
        else:
            c = self.AT @ r
            err = (self.k + 2) * _EPS * self.norms * nr
        if self.tail is not None:
            err = err + self.tail * slack
        c[taken] = -np.inf
        # the count-th largest lower bound over all ranks: any point above it may be chosen
        low = _kth_largest(c - err, count, comm)
        if not np.isfinite(low):
            return np.zeros(0), np.zeros(0, dtype=np.int64), 0
        cand = np.flatnonzero(c + err >= low - 2 * tie_rtol * abs(low))
        vals = self.AT[cand] @ r if self.tail is None else exact(cand)
        return (*_top(vals, cand, self.lo, comm, tie_rtol, count), cand.size)


def _kth_largest(values: np.ndarray, k: int, comm: MPI.Comm) -> float:
    """The k-th largest finite value over all ranks (the smallest finite one if fewer)."""
    v = values[np.isfinite(values)]
    local = np.partition(v, v.size - k)[v.size - k:] if v.size > k else v
    if comm.size > 1:
        local = np.concatenate(comm.allgather(local))
    if local.size == 0:
        return -np.inf
    return float(-np.sort(-local)[min(k, local.size) - 1])


def _top(values: np.ndarray, local_idx: np.ndarray, lo: int, comm: MPI.Comm, tie_rtol: float,
         count: int) -> tuple[np.ndarray, np.ndarray]:
    """The count largest of values given at some local points, over all ranks.

    Chosen one at a time: the largest remaining value, ties within ``tie_rtol * |max|``
    going to the smallest global index (so the result does not depend on the rank count).
    """
    order = np.argsort(-values, kind="stable")
    if order.size > count:             # this rank's contenders: its top count, and their ties
        edge = values[order[count - 1]]
        order = order[values[order] >= edge - 2 * tie_rtol * abs(edge)]
    v, g = values[order], (lo + local_idx[order]).astype(np.int64)
    if comm.size > 1:
        v, g = np.concatenate(comm.allgather(v)), np.concatenate(comm.allgather(g))
    out_v, out_g = [], []
    alive = np.isfinite(v)
    for _ in range(count):
        if not alive.any():
            break
        vmax = float(v[alive].max())
        hits = np.flatnonzero(alive & (v >= vmax - tie_rtol * abs(vmax)))
        i = int(hits[np.argmin(g[hits])])
        out_v.append(v[i])
        out_g.append(g[i])
        alive[i] = False
    return np.asarray(out_v, dtype=float), np.asarray(out_g, dtype=np.int64)

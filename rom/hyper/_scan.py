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
  bound reaches the maximum is evaluated on its *true* column (a collective callback):
  the chosen point is the argmax of the true correlations ``G^T r``, i.e. the NNOMP choice
  on the full G. Measured: one or two candidates per step;
- when many points need that check (the residual has moved out of the compressed rows),
  the caller adds the missing direction u as an exact extra row ``u^T G`` (:meth:`add_row`),
  which makes the invisible part zero for the current residual.
"""
from __future__ import annotations

from collections.abc import Callable

import numpy as np
from mpi4py import MPI

_U32 = float(np.finfo(np.float32).eps) / 2
_EPS = float(np.finfo(np.float64).eps)

#: more candidates than this (over all ranks) are not evaluated: the caller augments the
#: compressed rows, or falls back to the full matrix (or recompresses)
MAX_CANDIDATES = 4096


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
        self.tail2 = None if tail is None else np.asarray(tail, dtype=float) ** 2
        self.k = AT.shape[1]
        self.E = np.zeros((AT.shape[0], 0))       # extra exact rows (float64), points-major
        self.AT32 = None
        self.norms = np.sqrt(np.einsum("gk,gk->g", AT, AT))
        full = self.norms if tail is None else np.hypot(self.norms, self.tail2 ** 0.5)
        local = float(full.max(initial=0.0))
        #: largest column norm of the true G over all ranks
        self.colmax = local if comm.size == 1 else comm.allreduce(local, op=MPI.MAX)
        if float32:                           # same branch on every rank (collective calls)
            self.scale = max(float(AT.max(initial=0.0)), -float(AT.min(initial=0.0))) or 1.0
            self.AT32 = np.empty_like(AT, dtype=np.float32, order="K")
            np.multiply(AT, 1.0 / self.scale, out=self.AT32, casting="same_kind")

    @property
    def tail(self) -> np.ndarray | None:
        return None if self.tail2 is None else np.sqrt(self.tail2)

    def add_row(self, row: np.ndarray) -> None:
        """Append the exact row ``u^T G`` (n_local,) of a unit direction u orthogonal to the
        current rows; the truncated norms shrink accordingly."""
        self.E = np.column_stack([self.E, row])
        self.tail2 = np.maximum(self.tail2 - row**2 * (1 - 1e-8), 0.0)

    def argmax(self, r: np.ndarray, taken: np.ndarray, tie_rtol: float, slack: float = 0.0,
               exact: Callable[[np.ndarray], np.ndarray] | None = None
               ) -> tuple[float, int, int]:
        """(max correlation, global index) over the non-taken points of all ranks.

        Parameters
        ----------
        r : (k + extra rows,) the residual as seen by A (``P r_true`` when compressed)
        taken : (n_local,) points that are not candidates
        tie_rtol : values within ``tie_rtol * |max|`` are ties -> smallest global index
        slack : ``||(I - P^T P) r_true||`` (compressed A only)
        exact : collective ``J -> (G^T r_true)[J]`` for sorted global indices J (compressed A)

        Returns
        -------
        ``(value, index, n_candidates)``; index -1 when every point is taken, -2 when more
        than :data:`MAX_CANDIDATES` points would need an exact evaluation.
        """
        comm = self.comm
        r, re = r[:self.k], r[self.k:]
        nr = float(np.linalg.norm(r))
        if self.AT32 is not None and nr > 0:
            c = (self.AT32 @ (r / nr).astype(np.float32)).astype(np.float64) * (self.scale * nr)
            err = 1.01 * (self.k + 2) * _U32 * self.norms * nr
        else:
            c = self.AT @ r
            err = (self.k + 2) * _EPS * self.norms * nr
        if self.E.shape[1]:
            c += self.E @ re
        if self.tail2 is not None:
            err = err + np.sqrt(self.tail2) * slack
        c[taken] = -np.inf
        low = float(np.max(c - err, initial=-np.inf))
        low = low if comm.size == 1 else comm.allreduce(low, op=MPI.MAX)
        if not np.isfinite(low):
            return -np.inf, -1, 0
        cand = np.flatnonzero(c + err >= low - 2 * tie_rtol * abs(low))
        if self.tail2 is None:
            return (*_argmax(self.AT[cand] @ r, cand, self.lo, comm, tie_rtol), cand.size)
        J = self.lo + cand
        if comm.size > 1:
            J = np.concatenate(comm.allgather(J))
        if J.size > MAX_CANDIDATES:
            return -np.inf, -2, J.size
        J = np.sort(J)
        vals = exact(J)
        vmax = float(vals.max())
        return vmax, int(J[np.flatnonzero(vals >= vmax - tie_rtol * abs(vmax))[0]]), J.size


def _argmax(values: np.ndarray, local_idx: np.ndarray, lo: int, comm: MPI.Comm,
            tie_rtol: float) -> tuple[float, int]:
    """Global max of values given at some local points; ties -> smallest global index."""
    local = float(values.max()) if values.size else -np.inf
    vmax = local if comm.size == 1 else comm.allreduce(local, op=MPI.MAX)
    if not np.isfinite(vmax):
        return -np.inf, -1
    hits = local_idx[values >= vmax - tie_rtol * abs(vmax)]
    mine = int(lo + hits.min()) if hits.size else np.iinfo(np.int64).max
    return vmax, (mine if comm.size == 1 else comm.allreduce(mine, op=MPI.MIN))

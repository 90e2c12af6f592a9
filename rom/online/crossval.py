"""Leave-one-loading-out cross-validation of a reduced model, in its own reduced space.

The training check (:mod:`rom.online.training`) solves the model on loadings its bases
contain: errors and indicator there are a floor, not what a new loading gets. Here each
training loading ``j`` is solved again by a *fold* model whose bases exclude it:

- displacement: with ``a_s = Phi^T u_s`` the coordinates of every training snapshot in the
  model's (orthonormal) basis, the fold basis is ``Phi R_j``, ``R_j`` the POD (same energy
  criterion as the build, applied to the coordinates) of the coordinates of the *other*
  loadings' snapshots;
- p: likewise ``Psi_p R^p_j`` from ``b_s = Psi_p^T p_s``; the fold's indicator (the
  model's kind, ``online.indicator``) is computed against it at the model's reduced
  points;
- the reduced quadrature (points, weights) is the model's: the fold's integrands lie in
  the model's span.

Since ``span(Phi)`` holds every snapshot to the POD tolerance, ``span(Phi R_j)`` is, to that
tolerance, the POD of the other loadings' snapshots: the fold is the model a build without
loading ``j`` would have given (but for the quadrature), and loading ``j`` is a held-out
query for it. Its errors need no full-size field: with ``Phi`` orthonormal,
``|Phi R_j q - u_s|^2 = |R_j q - a_s|^2 + |u_s - Phi a_s|^2`` (and the same for p), so a
fold costs an SVD of ``n x m`` coordinates and a reduced solve.

The cross-validated (indicator, error) pairs calibrate the enrichment tolerance against
the error targets (:func:`crossval_tolerance`, ``online.indicator_crossval``).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from mpi4py import MPI

from ..linalg.pod import pod
from ..parallel import allreduce_sum, as_comm

__all__ = ["FoldData", "crossval", "crossval_tolerance", "fold_data", "fold_solve",
           "spread", "truncated_basis"]


@dataclass
class FoldData:
    """What the folds need of one training loading (O(n k + q k), no full-size field).

    ``times`` (k+1,) with the virgin state first, ``T_M`` (k+1, q) the temperature at the
    model's reduced points, ``a`` (n, k) / ``b`` (n_p, k) the snapshots' coordinates in the
    model's displacement / p basis, ``ru2`` / ``rp2`` (k,) their squared residuals,
    ``nu`` / ``npp`` the largest norm of the full-order displacement / p over the history.
    """

    name: str
    times: np.ndarray
    T_M: np.ndarray
    scale: float
    a: np.ndarray
    ru2: np.ndarray
    b: np.ndarray
    rp2: np.ndarray
    nu: float
    npp: float


def fold_data(bases, name: str, times, T_M, scale: float, U: np.ndarray,
              P: np.ndarray) -> FoldData:
    """:class:`FoldData` of a training loading from this rank's rows of its full-order
    fields at ``times[1:]``, ``U`` (3 n_local_nodes, k) and ``P`` (n_local_qp, k), and the
    model's distributed bases (:class:`~rom.online.model.FullBases`). Collective (one
    Allreduce per basis)."""
    comm = bases.comm
    U, P = np.asarray(U, float), np.asarray(P, float)
    a, b = bases.phi.tdot(U), bases.psi_p.tdot(P)
    # the squared norms and residuals |x - B B^T x|^2, summed by rows (not |x|^2 - |c|^2,
    # whose cancellation loses digits to the ratio of the norm to the residual)
    ru, rp = U - bases.phi.local @ a, P - bases.psi_p.local @ b
    sq = allreduce_sum(np.stack([np.sum(U * U, axis=0), np.sum(P * P, axis=0),
                                 np.sum(ru * ru, axis=0), np.sum(rp * rp, axis=0)]), comm)
    return FoldData(name, np.asarray(times, float), np.asarray(T_M, float), float(scale),
                    a, sq[2], b, sq[3],
                    float(np.sqrt(sq[0].max())) or 1.0, float(np.sqrt(sq[1].max())) or 1.0)


def truncated_basis(C: np.ndarray, rtol: float) -> np.ndarray:
    """Orthonormal POD basis of ``C`` (n, m) with the energy criterion of the build
    (:func:`rom.linalg.pod.pod`, TSQR: accurate to eps on these small matrices): the
    smallest r with ``sum_{i>r} s_i^2 <= rtol^2 sum s_i^2``."""
    return pod(C, rtol=rtol, method="tsqr").modes


def fold_solve(op, R: np.ndarray, Rp: np.ndarray, d: FoldData,
               indicator_kind: str = "p") -> tuple[float, float, float]:
    """Largest e_u, e_p and indicator over the steps of loading ``d`` solved by the
    operator ``op`` in the displacement basis ``Phi R`` and p basis ``Psi_p Rp``
    (:meth:`~rom.online.operator.ReducedOperator.fold`; ``R = Rp = I``: the model itself,
    the training check). Reduced only: O(q n), no full-size field."""
    from .solve import (
        AccumulatedIndicator,
        ReducedDivergence,
        gappy_indicator,
        initial_state,
        march,
        reduced_step_cut,
    )

    fold = op.fold(R, Rp)
    acc = AccumulatedIndicator.of({"indicator": indicator_kind, "dual_floor": op.dual_floor})
    worst = np.zeros(3)                                   # e_u, e_p, indicator

    def step(i, st):
        st, _ = reduced_step_cut(fold, st, d.T_M[i - 1], d.T_M[i], float(d.times[i]), d.scale)
        return st, None

    def record(i, st, _):
        pM = st.z[:, op.p_column]
        e, c = gappy_indicator(fold.gappy, pM, op.dual_floor)
        eta = e if acc is None else acc.step(fold.gappy, pM)
        eu = np.sqrt(np.sum((R @ st.q - d.a[:, i - 1]) ** 2) + d.ru2[i - 1]) / d.nu
        ep = np.sqrt(np.sum((Rp @ c - d.b[:, i - 1]) ** 2) + d.rp2[i - 1]) / d.npp
        np.maximum(worst, [eu, ep, eta], out=worst)

    try:
        march(d.times, initial_state(fold, d.times[0]), step, record)
    except ReducedDivergence:
        return np.inf, np.inf, np.inf
    return float(worst[0]), float(worst[1]), float(worst[2])


def spread(items: list, work, comm: MPI.Comm | None) -> list:
    """``[work(x) for x in items]`` with item j done on rank ``j % size`` of ``comm`` and
    the results gathered on every rank (independent items: training loadings, folds)."""
    comm = as_comm(comm)
    mine = [(j, work(x)) for j, x in enumerate(items) if j % comm.size == comm.rank]
    if comm.size == 1:
        return [r for _, r in mine]
    done = dict(pair for part in comm.allgather(mine) for pair in part)
    return [done[j] for j in range(len(items))]


def crossval(op, data: list[FoldData], rtol_u: float, rtol_p: float,
             indicator_kind: str = "p", comm: MPI.Comm | None = None) -> dict:
    """Leave each loading of ``data`` out of the bases in turn and solve it (see the module
    doc; the folds spread over the ranks of ``comm``). Returns lists ``names``, ``err_u``,
    ``err_p``, ``indicator`` (largest over the steps; inf where the fold diverges) and
    ``n_modes``, ``n_dual`` (fold basis sizes)."""
    if len(data) < 2:
        raise ValueError("cross-validation needs at least two training loadings")

    def one(j):
        d = data[j]
        others = [x for i, x in enumerate(data) if i != j]
        R = truncated_basis(np.hstack([x.a for x in others]), rtol_u)
        Rp = truncated_basis(np.hstack([x.b for x in others]), rtol_p)
        return (d.name, *fold_solve(op, R, Rp, d, indicator_kind), R.shape[1], Rp.shape[1])

    rows = spread(list(range(len(data))), one, comm)
    keys = ("names", "err_u", "err_p", "indicator", "n_modes", "n_dual")
    return {k: [r[i] for r in rows] for i, k in enumerate(keys)}


def crossval_tolerance(indicator, score, fraction: float, names=None,
                       margin: float = 0.0) -> tuple[float, str]:
    """Enrichment tolerance from cross-validated (indicator, error score) pairs, ``score`` =
    largest error relative to its target (> 1: above target).

    ``fraction * min_j indicator_j / score_j`` over the left-out loadings above target (all
    of them when none is): the indicator at which the first of them would have reached its
    target had its error grown in proportion to its indicator. Every left-out loading above
    target is flagged (``indicator_j > tol``); a loading far above target (a fold of a
    sparse training) gives a tolerance that far below its own indicator.

    ``margin``: loadings above target by at most this fraction (``1 < score <= 1 +
    margin``) do not set the tolerance (and may be missed by it): one fold barely above
    target with a small indicator otherwise sets the tolerance for all (docs/online.md).
    When no loading is above ``1 + margin`` the minimum runs over all of them, as when none
    is above target. Non-finite pairs (a diverged fold) are skipped. Returns the
    tolerance and a sentence saying where it comes from."""
    eta, score = np.asarray(indicator, float), np.asarray(score, float)
    if not margin >= 0.0:
        raise ValueError(f"margin must be >= 0, got {margin}")
    ok = np.isfinite(eta) & np.isfinite(score) & (score > 0)
    if not ok.any():
        raise ValueError("no finite cross-validated indicator")
    above = ok & (score > 1.0 + margin)
    excused = np.flatnonzero(ok & (score > 1.0) & ~above)
    pool = np.flatnonzero(above if above.any() else ok)
    k = pool[np.argmin(eta[pool] / score[pool])]
    who = f" ({names[k]})" if names is not None else ""
    over = "the error targets" + (f" by more than {margin:g} of them" if margin > 0 else "")
    why = (f"indicator / (error / target) {eta[k]:.3g} / {score[k]:.3g}{who}, the smallest "
           + (f"of the {int(above.sum())} cross-validated loading(s) above {over}"
              if above.any() else f"cross-validated one (none above {over})"))
    if excused.size:
        what = (": " + ", ".join(str(names[j]) for j in excused)) if names is not None else ""
        why += (f"; {excused.size} within the margin {margin:g} not counted{what}")
    return fraction * float(eta[k] / score[k]), f"online.indicator_crossval {fraction:g} x {why}"

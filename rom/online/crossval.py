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
from types import SimpleNamespace

import numpy as np

from ..hyper import GappyPOD
from ..linalg.pod import pod

__all__ = ["FoldData", "crossval", "crossval_tolerance", "fold_data", "truncated_basis"]


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


def fold_data(model, name: str, times, T_M, scale: float, us, ps) -> FoldData:
    """:class:`FoldData` of a training loading from its full-order fields ``us`` (k, 3 N)
    and ``ps`` (k, n_qp) at ``times[1:]``."""
    U = np.asarray(us, float).reshape(len(us), -1).T          # (3 N, k)
    P = np.asarray(ps, float).reshape(len(ps), -1).T          # (n_qp, k)
    phi, psi = model.full["phi"], model.full["psi_p"]
    a, b = phi.T @ U, psi.T @ P

    def res2(X, c):     # |x - B c|^2 = |x|^2 - |c|^2 for an orthonormal B, c = B^T x
        return np.maximum(np.sum(X * X, axis=0) - np.sum(c * c, axis=0), 0.0)
    return FoldData(name, np.asarray(times, float), np.asarray(T_M, float), float(scale),
                    a, res2(U, a), b, res2(P, b),
                    float(np.linalg.norm(U, axis=0).max()) or 1.0,
                    float(np.linalg.norm(P, axis=0).max()) or 1.0)


def truncated_basis(C: np.ndarray, rtol: float) -> np.ndarray:
    """Orthonormal POD basis of ``C`` (n, m) with the energy criterion of the build
    (:func:`rom.linalg.pod.pod`, TSQR: accurate to eps on these small matrices): the
    smallest r with ``sum_{i>r} s_i^2 <= rtol^2 sum s_i^2``."""
    return pod(C, rtol=rtol, method="tsqr").modes


def _fold_solve(model, R: np.ndarray, Rp: np.ndarray, d: FoldData) -> tuple[float, float, float]:
    """Largest e_u, e_p and indicator over the steps of loading ``d`` solved by the fold
    model (displacement basis ``Phi R``, p basis ``Psi_p Rp``)."""
    from .solve import (AccumulatedIndicator, ReducedDivergence, StepState, gappy_indicator,
                        reduced_step_cut)

    red = model.reduced
    fold = SimpleNamespace(law=model.law, meta=model.meta, reduced={
        **red, "eps": np.einsum("qcn,nr->qcr", red["eps"], R), "f_red": R.T @ red["f_red"]})
    gappy = GappyPOD(model.full["psi_p"][red["points"]] @ Rp)
    pc, floor = model.meta["p_column"], model.meta["dual_floor"]
    nq = red["points"].size
    st = StepState(float(d.times[0]), np.zeros(R.shape[1]), np.zeros((nq, 6)),
                   model.law.initial_state(nq))
    acc = AccumulatedIndicator.of(model)                  # the model's indicator
    eu = ep = eta = 0.0
    try:
        for i in range(1, d.times.size):  # loop over time steps
            st, _ = reduced_step_cut(fold, st, d.T_M[i - 1], d.T_M[i], float(d.times[i]),
                                     d.scale)
            e, c = gappy_indicator(gappy, st.z[:, pc], floor)
            eta = max(eta, e if acc is None else acc.step(gappy, st.z[:, pc]))
            eu = max(eu, np.sqrt(np.sum((R @ st.q - d.a[:, i - 1]) ** 2) + d.ru2[i - 1]) / d.nu)
            ep = max(ep, np.sqrt(np.sum((Rp @ c - d.b[:, i - 1]) ** 2) + d.rp2[i - 1]) / d.npp)
    except ReducedDivergence:
        return np.inf, np.inf, np.inf
    return float(eu), float(ep), float(eta)


def crossval(model, data: list[FoldData], rtol_u: float, rtol_p: float) -> dict:
    """Leave each loading of ``data`` out of the bases in turn and solve it (see the module
    doc). Returns lists ``names``, ``err_u``, ``err_p``, ``indicator`` (largest over the
    steps; inf where the fold diverges) and ``n_modes``, ``n_dual`` (fold basis sizes)."""
    if len(data) < 2:
        raise ValueError("cross-validation needs at least two training loadings")
    out: dict = {k: [] for k in ("names", "err_u", "err_p", "indicator", "n_modes", "n_dual")}
    for j, d in enumerate(data):  # loop over left-out loadings
        others = [x for i, x in enumerate(data) if i != j]
        R = truncated_basis(np.hstack([x.a for x in others]), rtol_u)
        Rp = truncated_basis(np.hstack([x.b for x in others]), rtol_p)
        eu, ep, eta = _fold_solve(model, R, Rp, d)
        for k, v in zip(out, (d.name, eu, ep, eta, R.shape[1], Rp.shape[1])):
            out[k].append(v)
    return out


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

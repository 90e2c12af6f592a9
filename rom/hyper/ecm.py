"""Empirical cubature (ECM): a few points and nonnegative weights that integrate the integrands.

Problem. ``G`` (m integrands x P points) and full-order weights ``w`` (P,) give the
integrals ``b = G w``. Find a small set S and ``x >= 0`` with
``||G_S x - b|| <= tol ||b||``.

Algorithm (nonnegative orthogonal matching pursuit, NNOMP; Hernández et al. 2017,
the variant of Mordicus). Repeat: add the point maximizing the correlation
``(G^T r)_g`` with the residual ``r = b - G_S x``; solve the nonnegative least squares
on the selected points; drop the points whose weight is zero; stop when the
relative residual is below ``tol``. What is done here to make it fast (see
docs/hyper.md for the measurements):

- the NNLS is warm-started from the previous solution and its positive set, and solved
  in the coordinates of an incrementally orthogonalized basis of the selected columns
  (:class:`rom.hyper._nnls.Selection`): one small least-squares solve per step;
- optionally the rows are compressed first (``compress=``): ``G ≈ Q Q^T G`` with ``Q``
  the leading left singular vectors (a POD of the integrands, from the Gram ``G G^T``),
  and the correlation scan, the only step that touches every point, runs on ``Q^T G``
  (k x P, k << m) with the projected residual ``Q^T r``. The NNLS and the stopping test
  always use the *true* columns of the selected points (m-long, cheap), and the few
  points whose correlation could be the maximum given the known truncation bound are
  re-evaluated exactly (their true correlations, computed where they live): the greedy
  is exactly NNOMP on G. When the residual leaves the compressed rows the candidates
  grow towards all points and a step costs up to one uncompressed scan, never more;
- the scan reads a float32 copy and refines the candidates in float64
  (:mod:`rom.hyper._scan`): half the memory traffic, the same argmax;
- optionally (``batch=``) one scan proposes several points, the largest correlations,
  which enter the NNLS one at a time as long as their duals on the updated residual are
  positive (generalized OMP): fewer scans, the cost of a large greedy.

Distribution: columns (points) are split over the ranks; the NNLS data (selected
columns, the target) are replicated identically on every rank, the argmax is
global with ties broken by the smallest global index, so the answer does not
depend on the number of ranks.
"""
from __future__ import annotations

import sys
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from mpi4py import MPI

from ..parallel import allreduce_sum, as_comm, rank0_print
from ._common import (
    TIE_RTOL,
    check_indices,
    check_tol,
    eig_desc,
    few_points,
    float_array,
    gather_columns,
    nonfinite_message,
    offsets_of,
    raise_collective,
    truncation_rank,
)
from ._nnls import Selection
from ._scan import Scanner

__all__ = ["TrueIntegrands", "compress_rows", "ecm", "quadrature_error"]


@dataclass(frozen=True)
class TrueIntegrands:
    """The true integrands behind a row-compressed matrix ``A = P G`` given to :func:`ecm`.

    ``P`` (k x m) has orthonormal rows. With it, ecm runs the NNOMP of the true G: the
    NNLS and the stopping test use the true columns of the selected points, and the scan
    on A is corrected by a rigorous bound (:mod:`rom.hyper._scan`).

    Attributes
    ----------
    integrals : (m,) the true integrals ``b = G w`` (same on every rank)
    columns : collective ``columns(J) -> (m, len(J))``: true columns at global points J
    project : ``project(r) -> P r``: (m,) -> (k,)
    tail : (n_local,) ``||(I - P^T P) g_g||`` of this rank's points (an upper bound is fine)
    correlations : local ``correlations(r, I) -> (G^T r)[I]`` for a residual r (m,) and
        increasing local point indices I (not collective; any number of points, up to all)
    """

    integrals: np.ndarray
    columns: Callable[[np.ndarray], np.ndarray]
    project: Callable[[np.ndarray], np.ndarray]
    tail: np.ndarray
    correlations: Callable[[np.ndarray, np.ndarray], np.ndarray]


def compress_rows(G: np.ndarray, tol: float, comm: MPI.Comm | None = None
                  ) -> tuple[np.ndarray, np.ndarray]:
    """Orthonormal basis of the leading row space of a column-distributed ``G`` (a POD of its rows).

    Parameters
    ----------
    G : (m, n_local) this rank's columns
    tol : relative energy tolerance: keep the smallest k with
        ``sqrt(sum_{i>k} s_i^2) <= tol sqrt(sum_i s_i^2)``
    comm : communicator (``None``: serial)

    Returns
    -------
    Q : (m, k) orthonormal columns, identical on every rank
    s : (m,) all singular values of ``G``, descending (from the Gram ``G G^T``, one Allreduce
        of m^2 numbers; cost m^2 n_local flops per rank). Singular values below about
        ``sqrt(eps) s_1`` are not resolved by the Gram, which is why ``tol`` should stay
        above ~1e-7.
    """
    comm = as_comm(comm)
    lam, V = eig_desc(allreduce_sum(G @ G.T, comm))
    return np.ascontiguousarray(V[:, :truncation_rank(lam, tol)]), np.sqrt(lam)


def quadrature_error(G: np.ndarray, weights: np.ndarray, indices: np.ndarray,
                     reduced_weights: np.ndarray, comm: MPI.Comm | None = None) -> float:
    """Relative error ``||G_S x - G w|| / ||G w||`` of a reduced rule (collective).

    Parameters
    ----------
    G : (m, n_local) integrands at this rank's points
    weights : (n_local,) full-order weights at this rank's points
    indices, reduced_weights : the reduced rule (global point indices, weights), same on all ranks
    """
    comm = as_comm(comm)
    b = allreduce_sum(G @ weights, comm)
    GS = gather_columns(G, np.asarray(indices), offsets_of(G.shape[1], comm), comm)
    return float(np.linalg.norm(GS @ np.asarray(reduced_weights) - b) / np.linalg.norm(b))


def _validate(G: Any, weights: Any, comm: MPI.Comm) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    G = float_array(G, "G", 2)
    w = float_array(weights, "weights", 1)
    offsets = offsets_of(G.shape[1], comm)
    off = int(offsets[comm.rank])
    msg = None
    if w.shape[0] != G.shape[1]:
        msg = (f"weights has {w.shape[0]} entries but G has {G.shape[1]} columns (points) "
               f"on this rank; G must be (n_integrands, n_local_points)")
    else:
        msg = (nonfinite_message(G, "G", ("integrand", "point"), (0, off))
               or nonfinite_message(w, "weights", ("point",), (off,)))
        neg = np.flatnonzero(w < 0)
        if msg is None and neg.size:
            msg = f"weights must be >= 0, got weights = {w[neg[0]]} at point {off + neg[0]}"
    raise_collective(msg, comm)
    ms = comm.allgather(G.shape[0]) if comm.size > 1 else [G.shape[0]]
    if len(set(ms)) != 1:
        raise_collective(f"G has {G.shape[0]} rows here but the ranks disagree: {ms}", comm)
    return G, w, offsets


def ecm(G: np.ndarray, weights: np.ndarray, *, tol: float, comm: MPI.Comm | None = None,
        warm_start: np.ndarray | None = None, imposed: np.ndarray | None = None,
        warm_weights: np.ndarray | None = None, compress: float | None = None,
        exact: TrueIntegrands | None = None,
        max_points: int | None = None, keep_warm_start: bool = True, reduce: bool = False,
        batch: int = 1, tie_rtol: float = TIE_RTOL, float32_scan: bool | None = None,
        progress: float | None = 10.0, return_info: bool = False):
    """Empirical cubature by nonnegative orthogonal matching pursuit (collective).

    Parameters
    ----------
    G : (m, n_local) integrand matrix: rows = integrands (e.g. ``sigma_s : eps(phi_i)``
        for every snapshot s and mode i, see :mod:`rom.hyper.integrand`), **local columns =
        this rank's integration points**, in global order (rank 0's points first). Units:
        those of the integrand (e.g. J/m^3).
    weights : (n_local,) full-order quadrature weights of this rank's points (>= 0; e.g. m^3)
    tol : relative tolerance in (0, 1): the result satisfies
        ``||G_S x - G w||_2 <= tol ||G w||_2`` unless a warning says otherwise
    comm : communicator over which the points are split (``None``: serial)
    warm_start : global indices of an earlier point set, put in first and kept in the
        result (weight >= 0, possibly 0) when ``keep_warm_start`` (the default; set it
        False to drop those of zero weight like any other point)
    warm_weights : (len(warm_start),) weights of the earlier rule at ``warm_start`` (>= 0,
        same order): the first NNLS, on the warm-start points, starts from them (their
        positive set is its first passive set, factored once) instead of from zero, where
        Lawson–Hanson adds the points one at a time. Nearly optimal when only a few
        integrands are new (an enrichment): a few active-set steps instead of hundreds.
        The same optimum (unique when the columns are independent).
    imposed : global indices of points that must be in the result with weight 0 (points
        where the law is evaluated for an error indicator); they are never quadrature points
    compress : relative energy tolerance of a POD of the rows of G done first (see
        :func:`compress_rows`), e.g. ``1e-6``; ``None``: no compression. Pays off when m
        is large and G has a low numerical rank. The points and weights are those of the
        greedy on the full G (same NNOMP, see the module doc).
    exact : :class:`TrueIntegrands`, when ``G`` is itself a row-compressed integrand
        matrix ``P G_true`` (e.g. from :func:`rom.hyper.integrand.compress_integrand`): the
        result is then the NNOMP of the true integrands (NNLS, stopping test and argmax
        on the true columns), G only serving the scan.
    max_points : stop (with a warning) when this many points have positive weight
    keep_warm_start : see ``warm_start``
    reduce : after the greedy, eliminate points while the tolerance holds: remove the point
        whose removal (NNLS re-solved on the others) keeps ``||G_S x - G w|| <= tol ||G w||``,
        repeat until none can go (:meth:`rom.hyper._nnls.Selection.eliminate`). Never more
        points, never above ``tol``; warm-start points kept by ``keep_warm_start`` stay.
        Works on the replicated selected columns only (no pass over G, same at any rank
        count); costs a few small NNLS per point (see docs/hyper.md for what it gains).
    batch : points proposed per correlation scan: the ``batch`` largest positive
        correlations (generalized OMP; 1 is NNOMP). They enter the NNLS one at a time, the
        largest first, then while some has a positive dual on the updated residual; the
        others are not added and stay candidates. Fewer scans (the cost of a large
        greedy), sometimes more points: use it with ``reduce=True``.
    tie_rtol : correlations within ``tie_rtol * max`` of the maximum are ties, broken by
        the smallest global index (keeps the result independent of the rank count)
    float32_scan : screen the correlations with a float32 copy of the greedy matrix
        (half the memory traffic, 50 % more memory) and refine the candidates in float64;
        the selected point is the same as with float64 (see :mod:`rom.hyper._scan`).
        Default: on when (rows of the greedy matrix) x (points) >= 2**22.
    progress : seconds between progress lines on rank 0 (stderr); ``None`` silences
    return_info : also return a dict (achieved ``error``, ``rank`` = rows of the scanned
        matrix, ``iterations`` (scans), ``history`` of errors (per scan), ``order`` of selection,
        ``candidates`` = points of this rank whose correlation was evaluated exactly, per
        step, ``eliminated`` = points removed by ``reduce``, ``elimination_time`` in s)

    Returns
    -------
    indices : (q,) int64 global point indices, sorted, identical on every rank
        (quadrature points, warm-start points and imposed points)
    reduced_weights : (q,) nonnegative weights aligned with ``indices`` (0 at imposed points)
    info : dict, only with ``return_info=True``

    Raises
    ------
    ValueError
        NaN/inf in G or weights, shape mismatch, negative weights, tol outside (0, 1),
        indices out of range or repeated, zero integrals ``G w = 0``.
    """
    comm = as_comm(comm)
    t0 = time.perf_counter()
    tol = check_tol(tol, "tol")
    if compress is not None:
        compress = check_tol(compress, "compress")
        if exact is not None:
            raise ValueError("give either compress= or exact=, not both")
    G, w, offsets = _validate(G, weights, comm)
    lo, hi, n_glob = int(offsets[comm.rank]), int(offsets[comm.rank + 1]), int(offsets[-1])
    ws = check_indices(warm_start, n_glob, "warm_start")
    imp = check_indices(imposed, n_glob, "imposed")
    if warm_weights is not None:
        warm_weights = float_array(warm_weights, "warm_weights", 1)
        if warm_weights.shape != ws.shape or np.any(warm_weights < 0):
            raise ValueError(f"warm_weights must be {ws.size} nonnegative weights, one per "
                             f"warm_start point, got shape {warm_weights.shape}")
    both = np.intersect1d(ws, imp)
    if both.size:
        raise ValueError(f"point {both[0]} is both in warm_start and in imposed")
    tail, correlations = None, None
    if exact is not None:
        b, columns, project = np.asarray(exact.integrals, dtype=float), exact.columns, exact.project
        correlations = exact.correlations
        tail = np.asarray(exact.tail, dtype=float)
        if tail.shape != (G.shape[1],) or b.ndim != 1:
            raise ValueError(f"exact.tail must have one entry per local point ({G.shape[1]}), "
                             f"got shape {tail.shape}; exact.integrals must be 1-D")
    else:
        b = allreduce_sum(G @ w, comm)

        def columns(J):
            return gather_columns(G, J, offsets, comm)

        def project(r):
            return r
    nb = float(np.linalg.norm(b))
    if nb == 0.0:
        raise ValueError("the integrals G @ weights are all zero: a relative tolerance is "
                         "meaningless (check the integrands and the weights)")
    AT = G.T
    if compress is not None:
        Q, _ = compress_rows(G, compress, comm)
        AT = np.ascontiguousarray(G.T @ Q)          # (n_local, k), points-major
        norms2 = np.einsum("ij,ij->j", G, G)
        tail = np.sqrt(np.maximum(norms2 - np.einsum("gk,gk->g", AT, AT), 0) + 1e-13 * norms2)

        def project(r):
            return Q.T @ r

        def correlations(r, J):
            return r @ G[:, J] if few_points(J.size, G.shape[1]) else (r @ G)[J]
    max_points = n_glob if max_points is None else int(max_points)
    if isinstance(batch, bool) or not isinstance(batch, (int, np.integer)) or batch < 1:
        raise ValueError(f"batch must be an integer >= 1, got {batch!r}")
    if float32_scan is None:
        float32_scan = AT.shape[1] * n_glob >= 2**22
    scan = Scanner(AT, lo, comm, float32_scan, tail)

    taken = np.zeros(hi - lo, dtype=bool)           # selected or imposed (not candidates)
    taken[imp[(imp >= lo) & (imp < hi)] - lo] = True
    sel = Selection(b.size)

    def add(J, kept, cols=None, prepared=None):
        pos = sel.append(J, columns(J) if cols is None else cols, kept, prepared)
        taken[J[(J >= lo) & (J < hi)] - lo] = True
        return pos

    if ws.size:
        add(ws, keep_warm_start)
        if warm_weights is not None:
            sel.start_from(warm_weights)
        sel.solve(b)
        dropped = sel.prune()
        taken[dropped[(dropped >= lo) & (dropped < hi)] - lo] = False

    history, order, n_cands = [], [], []
    last_report = time.perf_counter()
    n_iter, max_iter = 0, 4 * (max(b.size, 1) + ws.size) + 100
    stalls, last_err = 0, np.inf
    while True:
        r = sel.residual(b)                         # true residual
        err = float(np.linalg.norm(r)) / nb
        history.append(err)
        if err <= tol:
            break
        if np.count_nonzero(sel.x > 0) >= max_points or n_iter >= max_iter:
            why = "max_points" if n_iter < max_iter else "iteration limit"
            warnings.warn(f"ecm stopped at {sel.idx.size} points ({why}) with relative error "
                          f"{err:.3e} > tol {tol:.1e}", RuntimeWarning, stacklevel=2)
            break
        stalls = stalls + 1 if err >= last_err * (1 - 1e-13) else 0
        last_err = err
        rs = project(r)                             # the residual seen by the scan
        nr = float(np.linalg.norm(r))
        slack = np.sqrt(max(nr**2 - float(rs @ rs), 0.0) + 4 * np.finfo(float).eps * nr**2)
        room = max_points - np.count_nonzero(sel.x > 0)
        vals, J, n_cand = scan.top(rs, taken, tie_rtol, min(batch, room), slack,
                                   exact=lambda I, r=r: correlations(r, I))
        n_cands.append(n_cand)
        # exhausted: no candidate, no column correlates above round-off, or no progress
        if J.size == 0 or stalls >= 3 or vals[0] <= 1e-12 * nr * scan.colmax:
            warnings.warn(f"ecm: no point can reduce the error further; stopped at "
                          f"{sel.idx.size} points with relative error {err:.3e} > tol "
                          f"{tol:.1e}", RuntimeWarning, stacklevel=2)
            break
        J = J[vals > 1e-12 * nr * scan.colmax]      # (the first one always)
        GJ = columns(J)
        entered = _enter(sel, b, J, GJ, add, 1e-12 * scan.colmax, tol * nb)
        dropped = sel.prune()
        taken[dropped[(dropped >= lo) & (dropped < hi)] - lo] = False
        n_iter += 1
        order.extend(entered)
        if progress and time.perf_counter() - last_report > progress:
            last_report = time.perf_counter()
            rank0_print(comm, f"ecm: {sel.idx.size} points, relative error {err:.3e} "
                        f"(tol {tol:.1e}), {n_iter} steps, {last_report - t0:.1f} s"
                        + (f"; last step evaluated {n_cand} point(s) exactly on rank 0"
                           if tail is not None else ""), file=sys.stderr)

    eliminated, t_elim = np.zeros(0, dtype=np.int64), time.perf_counter()
    if reduce and err <= tol:
        eliminated, _ = sel.eliminate(b, tol * nb * (1 - 1e-6))
        if eliminated.size:
            err = float(np.linalg.norm(sel.residual(b))) / nb
    t_elim = time.perf_counter() - t_elim
    idx = np.concatenate([sel.idx, imp])
    x = np.concatenate([sel.x, np.zeros(imp.size)])
    perm = np.argsort(idx, kind="stable")
    if not return_info:
        return idx[perm], x[perm]
    info = {"error": err, "rank": AT.shape[1], "iterations": n_iter, "history": history,
            "order": order, "candidates": n_cands, "eliminated": eliminated.tolist(),
            "elimination_time": t_elim, "time": time.perf_counter() - t0,
            "n_points": int(np.count_nonzero(x > 0))}
    return idx[perm], x[perm], info


def _enter(sel: Selection, b: np.ndarray, J: np.ndarray, GJ: np.ndarray, add, rtol: float,
           target: float) -> list[int]:
    """Let the points J (largest correlation first, true columns GJ) into the NNLS.

    The first enters; then, as in Lawson–Hanson, the one with the largest positive dual
    ``g_j^T r`` on the new residual, one at a time, until no dual exceeds
    ``rtol ||r||`` or ``||r|| <= target``. Points that never enter are not added (their
    columns never reach the orthogonal basis) and stay candidates of the next scan.
    Returns the global indices that entered, in order.

    Between two entries the residual is not formed: ``G_S x = Q R x`` lies in the span of
    the selection's basis Q, so ``||r||^2 = ||b_perp||^2 + ||Q^T b - R x||^2`` with
    ``b_perp = b - Q Q^T b`` (kept explicitly, projected out of each new basis vector:
    ``||b||^2 - ||Q^T b||^2`` would cancel when ``||r|| << ||b||``) and
    ``g_j^T r = g_j^T b - (Q^T g_j)^T R x``, with ``Q^T g_j`` from :meth:`Selection.prepare`
    (q-long vectors instead of m-long ones).
    """
    pending = np.ones(J.size, dtype=bool)
    pre = sel.prepare(GJ) if J.size > 1 else None      # the basis read once for the batch
    if pre is not None:
        _, q0, C0, V0, _ = pre                         # Q^T GJ = [C0; Q[:, q0:]^T V0]
        gb, C1 = GJ.T @ b, np.zeros((0, J.size))
        bp = b.copy()
        for _ in range(2):                             # b_perp, orthogonalized twice
            bp -= sel.basis(0) @ (sel.basis(0).T @ bp)
    i, entered = 0, []
    while True:
        pending[i] = False
        one = None if pre is None else (*pre[:2], pre[2][:, i:i + 1], pre[3][:, i:i + 1],
                                        pre[4][i:i + 1])
        sel.solve(b, add=add(J[i:i + 1], False, GJ[:, i:i + 1], one))
        entered.append(int(J[i]))
        if not pending.any():
            return entered
        Qn = sel.basis(q0 + C1.shape[0])               # the basis vectors new since then
        for _ in range(2):
            bp -= Qn @ (Qn.T @ bp)
        C1 = np.vstack([C1, Qn.T @ V0])
        qb, fit = sel.target_coordinates(b), sel.fitted()
        nr = float(np.sqrt(bp @ bp + np.sum((qb - fit) ** 2)))
        if nr <= target:
            return entered
        dual = np.where(pending, gb - C0.T @ fit[:q0] - C1.T @ fit[q0:], -np.inf)
        i = int(np.argmax(dual))                  # (ties -> first, i.e. larger correlation)
        if dual[i] <= rtol * nr:
            return entered

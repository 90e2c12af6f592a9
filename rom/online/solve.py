"""Online stage: reduced Newton per time step at the reduced points, error indicator,
enrichment on demand (docs/online.md)."""
from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field

import numpy as np
import scipy.linalg.blas as _blas
from mpi4py import MPI

from ..hyper import GappyPOD
from ..linalg.rowblocks import entity_rows
from ..materials.base import MaterialError
from ..materials.tensors import IsotropicTangent
from ..parallel import UserError, rank0_print
from .operator import ReducedOperator
from .result import OnlineResult

__all__ = ["AccumulatedIndicator", "ReducedDivergence", "StepState", "gappy_indicator",
           "indicator", "initial_state", "march", "reduced_step", "solve"]


class ReducedDivergence(RuntimeError):
    """The reduced Newton did not converge (and enrichment was off)."""


@dataclass
class StepState:
    """Reduced state at one time: coordinates and the history at the reduced points."""

    time: float
    q: np.ndarray                 # (n,) reduced coordinates
    eps: np.ndarray               # (q, 6) strain at the reduced points
    z: np.ndarray                 # (q, n_state) internal variables at the reduced points
    extra: dict = field(default_factory=dict)


def temperature_at_points(op, temperature, t: float, i: int) -> np.ndarray:
    """Temperature (q,) [K] at the reduced points of the operator ``op`` at time t (step
    i): O(q), not O(N)."""
    if isinstance(temperature, np.ndarray):
        Tn = temperature[i][op.nodes]
    else:
        x = op.node_coords
        Tn = _eval(temperature, x[..., 0], x[..., 1], x[..., 2], t)
    return op.temperature(Tn)


def temperature_at_nodes(model, temperature, t: float, i: int) -> np.ndarray:
    """Nodal temperature (n_nodes,) [K] (O(N): enrichment only)."""
    if isinstance(temperature, np.ndarray):
        return temperature[i]
    x = model.mesh.points
    return _eval(temperature, x[:, 0], x[:, 1], x[:, 2], t)


def _eval(temperature, x, y, z, t):
    """Temperature [K] at points (arrays x, y, z [m]) at time t [s] of a formula string
    (:mod:`rom.formula`: checked syntax tree, no code execution) or a callable; checked
    finite and > 0 K."""
    if isinstance(temperature, str):
        from ..formula import Expression
        val = Expression.cached(temperature, ("x", "y", "z", "t"), "temperature").evaluate(
            x=x, y=y, z=z, t=t)
    else:
        val = temperature(x, y, z, t)
    val = np.broadcast_to(np.asarray(val, float), x.shape)
    if not np.all(np.isfinite(val)):
        raise UserError(f"temperature gives non-finite values at t = {t:g} s")
    if np.any(val <= 0):
        raise UserError(f"temperature gives values <= 0 K (down to {val.min():g} K) at "
                        f"t = {t:g} s")
    return val


def _check_inputs(model, temperature, times, tol=None):
    """The query's inputs checked up front (:class:`UserError` saying what is wrong):
    times finite and increasing, a temperature array (n_times, n_nodes) finite and > 0 K,
    a formula string in the formula language (:mod:`rom.formula`), ``tol`` (if given)
    finite and > 0. Returns (temperature, times) as arrays where they are arrays."""
    try:
        times = np.asarray(times, float)
    except (TypeError, ValueError):
        raise UserError("times must be a 1-D array of numbers [s]") from None
    bad = np.flatnonzero(~np.isfinite(times.ravel()))
    if bad.size:
        raise UserError(f"times must be finite, got {times.ravel()[bad[0]]} at index {bad[0]}")
    if times.ndim != 1 or times.size < 2 or np.any(np.diff(times) <= 0):
        raise UserError("times must be a 1-D increasing array with at least 2 entries [s]")
    number = isinstance(tol, (int, float, np.integer, np.floating)) and not isinstance(tol, bool)
    if tol is not None and not (number and np.isfinite(tol) and tol > 0):
        raise UserError(f"tol: the indicator tolerance must be a finite number > 0, got {tol!r}")
    if isinstance(temperature, (np.ndarray, list)):
        try:
            temperature = np.asarray(temperature, float)
        except (TypeError, ValueError):
            raise UserError("temperature array must hold numbers [K]") from None
        nn = model.meta.get("n_nodes")
        if temperature.ndim != 2 or temperature.shape[0] != times.size or (
                nn is not None and temperature.shape[1] != nn):
            raise UserError(f"temperature array must be (n_times, n_nodes) = ({times.size}, "
                            f"{nn}), got {temperature.shape}")
        bad = np.argwhere(~(temperature > 0) | ~np.isfinite(temperature))
        if bad.size:
            i, j = (int(v) for v in bad[0])
            raise UserError(f"temperature array must be finite and > 0 K, got "
                            f"{temperature[i, j]} at time index {i}, node {j} ({len(bad)} "
                            "such entries)")
    elif isinstance(temperature, str):
        from ..formula import Expression
        Expression.cached(temperature, ("x", "y", "z", "t"), "temperature")
    elif not callable(temperature):
        raise UserError("temperature must be an (n_times, n_nodes) array, a callable "
                        "T(x, y, z, t) or a formula string in x, y, z, t")
    return temperature, times


def reduced_step(op: ReducedOperator, st: StepState, T: np.ndarray, t_new: float,
                 scale: float):
    """Reduced Newton for one step of the operator ``op``. Returns (StepState, iterations)
    or raises :class:`ReducedDivergence`.

    With E the mode strains at the q reduced points stacked as a (6 q, n) matrix and W the
    reduced weights, the internal forces are E^T W sigma and the tangent E^T W D E: two
    matrix products per iteration, no loop over points (:func:`reduced_tangent`).

    The tangent only steers the iterations (the residual, hence the converged answer, is in
    double precision): the first iteration takes the previous step's last tangent when the
    step has the same length (kept in ``st.extra["tangent"]``), and the isotropic laws'
    tangent is formed in single precision (:func:`_tangent_single`). On the blade this
    saves a fifth to a quarter of a step at the same iteration count except the unloading
    step's one or two more (docs/online.md). A tangent is kept for the next iteration
    while the residual falls by more than ``1 / _REFRESH`` per iteration (a tangent costs
    about an iteration's law and residual), and on a creep hold (same step length,
    temperature at the points and load amplitude as the previous step) the Newton starts
    from the linear extrapolation of the last two steps' coordinates
    (:func:`_hold_predictor`). If that Newton fails, the step is retried from the
    previous coordinates with a fresh double-precision tangent at every iteration before
    it counts as diverged."""
    try:
        return _newton(op, st, T, t_new, scale, fast=True)
    except ReducedDivergence:
        return _newton(op, st, T, t_new, scale, fast=False)


def _newton(op: ReducedOperator, st: StepState, T: np.ndarray, t_new: float, scale: float,
            fast: bool):
    law, E, w = op.law, op.E, op.weights                # (6 q, n), (q,)
    n = op.n_modes
    dt = t_new - st.time
    a = op.amplitude(t_new)
    f = scale * a * op.f_red
    q = _hold_predictor(st, dt, T, a) if fast else st.q.copy()
    split = {"split_tangent": True} if getattr(law, "split_tangent", False) else {}
    if getattr(law, "step_work", False):                # the law's scratch, kept over steps
        split["work"] = st.extra.get("law_work", {}) if fast else {}
    K = _previous_tangent(st, dt, n) if fast else None
    ref, rtol, rn_prev = None, op.newton_rtol, None
    for it in range(op.newton_max_iter + 1):
        eps = (E @ q).reshape(-1, 6)
        try:
            sig, z, D = law.integrate(st.eps, eps, st.z, T, dt, **split)
        except MaterialError as exc:
            raise ReducedDivergence(f"material integration failed at t = {t_new:g} s: "
                                    f"{exc}") from None
        wsig = (w[:, None] * sig).ravel()
        r = wsig @ E - f
        rn = float(np.linalg.norm(r))
        if ref is None:
            ref = max(rn, float(np.linalg.norm(f)), float(np.linalg.norm(np.abs(wsig) @ op.abs_E)))
        if not np.isfinite(rn):
            break
        if rn <= rtol * ref or ref == 0.0:
            extra = {"stress": sig, "hold": (dt, st.q, T, a)}
            if "work" in split:
                extra["law_work"] = split["work"]
            if K is not None:
                extra["tangent"] = (dt, K)
            return StepState(t_new, q, eps, z, extra), it
        if it == op.newton_max_iter:
            break
        if not fast or K is None or (rn_prev is not None and rn > _REFRESH * rn_prev):
            K = reduced_tangent(op, D, single=fast)
        try:
            q = q - np.linalg.solve(K, r)
        except np.linalg.LinAlgError:
            break
        rn_prev = rn
    raise ReducedDivergence(f"reduced Newton did not converge at t = {t_new:g} s")


#: a Newton iteration keeps its tangent when the residual fell by more than 1 / _REFRESH in
#: the last one (measured on the size-2 blade, 5 queries: 0.1 and 0.01 cost more per step)
_REFRESH = 0.03


def _hold_predictor(st: StepState, dt: float, T: np.ndarray, a: float) -> np.ndarray:
    """Start of the Newton of the step from ``st`` to ``st.time + dt``: ``2 q_n - q_(n-1)``
    on a hold (the step that led to ``st`` had the same length to rounding, the same
    temperature at the reduced points and the same load amplitude; kept in
    ``st.extra["hold"]``), where the creep displacement changes smoothly; else ``q_n``."""
    prev = st.extra.get("hold")
    if (prev is None or prev[1].shape != st.q.shape or abs(prev[0] - dt) > 1e-12 * abs(dt)
            or prev[3] != a or not np.array_equal(prev[2], T)):
        return st.q.copy()
    return 2.0 * st.q - prev[1]


def _previous_tangent(st: StepState, dt: float, n: int) -> np.ndarray | None:
    """The last tangent of the step that led to ``st`` if that step had the length ``dt``
    (to rounding) and the same number of modes, else None."""
    prev = st.extra.get("tangent")
    if prev is None or prev[1].shape[0] != n or abs(prev[0] - dt) > 1e-12 * abs(dt):
        return None
    return prev[1]


#: square root of the Voigt image of the Mandel identity (IsotropicTangent's S)
_SQRT_S = np.array([1.0, 1.0, 1.0, np.sqrt(0.5), np.sqrt(0.5), np.sqrt(0.5)])


def reduced_tangent(op: ReducedOperator, D, *, single: bool = False) -> np.ndarray:
    """``K = sum_g w_g E_g^T D_g E_g`` (n, n) of the operator's mode strains ``E_g`` (6, n)
    and weights ``w_g``.

    D (q, 6, 6): one 6 x 6 by 6 x n product per point, then one (6 q, n) product.
    D an :class:`~rom.materials.tensors.IsotropicTangent`
    (``alpha 1 1^T + beta S + gamma m m^T``): with F the rows of E scaled by
    ``sqrt(w beta S)``, ``K = F^T F + A^T W alpha A + B^T W gamma B`` where ``A = 1^T E_g``
    (the traces, cached in the operator) and ``B = m_g^T E_g``: one symmetric rank-6q
    product (BLAS syrk) and two (q, n) products, about half the time of the general form.
    ``single``: the three terms as two syrk in single precision (:func:`_tangent_single`),
    0.61 ms instead of 0.94 ms on the blade's 905 points and 42 modes; its relative error,
    ~1e-7 cond(K), only slows a Newton whose residual is in double precision when cond(K)
    approaches 1e6 (measured: 9.6e4 there, same iteration counts)."""
    E3, w = op.eps, op.weights
    n = E3.shape[2]
    if not isinstance(D, IsotropicTangent):
        # (einsum: half the time of a batched matmul of 6 x 6 by 6 x n blocks here)
        WDE = np.einsum("gij,gjk->gik", w[:, None, None] * D, E3).reshape(-1, n)
        return op.E.T @ WDE
    wb = w * D.beta
    if np.any(wb < 0):                   # not a sum of squares: the general form
        return reduced_tangent(op, D.full())
    if single and np.all(D.alpha >= 0) and (D.gamma is None or np.all(D.gamma <= 0)):
        return _tangent_single(op, D)
    F = (E3 * (np.sqrt(wb)[:, None, None] * _SQRT_S[:, None])).reshape(-1, n)
    K = _blas.dsyrk(1.0, F.T, trans=0)    # F.T is Fortran-ordered: no copy; upper triangle
    K = np.triu(K) + np.triu(K, 1).T
    A = op.traces
    K += (A * (w * D.alpha)[:, None]).T @ A
    if D.gamma is not None:
        B = np.einsum("gi,gik->gk", D.m, E3)
        K += (B * (w * D.gamma)[:, None]).T @ B
    return K


def _tangent_single(op: ReducedOperator, D: IsotropicTangent) -> np.ndarray:
    """:func:`reduced_tangent` of a three-term tangent with ``alpha >= 0 >= gamma`` (the
    isotropic laws: alpha is at least Lame's lambda, gamma is 0 or a creep softening) as two
    symmetric products in single precision, ``K = F^T F - H^T H``: F the 7 q rows
    ``sqrt(w beta S) E_g`` and ``sqrt(w alpha) 1^T E_g``, H the q rows
    ``sqrt(-w gamma) m_g^T E_g`` (float32 mode strains and traces cached in the operator)."""
    q, _, n = op.eps.shape
    w = op.weights
    E3s, A = op.eps32, op.traces32
    F = np.empty((q, 7, n), np.float32)
    np.multiply(E3s, (np.sqrt(w * D.beta) * _SQRT_S[:, None]).T.astype(np.float32)[:, :, None],
                out=F[:, :6])
    np.multiply(A, np.sqrt(w * D.alpha).astype(np.float32)[:, None], out=F[:, 6])
    K = _blas.ssyrk(1.0, F.reshape(-1, n).T, trans=0)          # upper triangle
    if D.gamma is not None:
        H = np.einsum("gi,gik->gk", D.m.astype(np.float32), E3s)
        H *= np.sqrt(-w * D.gamma).astype(np.float32)[:, None]
        K = _blas.ssyrk(-1.0, H.T, beta=1.0, c=K, trans=0, overwrite_c=1)
    K = K.astype(float)
    return np.triu(K) + np.triu(K, 1).T


def reduced_step_cut(op: ReducedOperator, st: StepState, T_old: np.ndarray, T: np.ndarray,
                     t_new: float, scale: float, cuts: int = 3) -> tuple[StepState, int]:
    """:func:`reduced_step`, halving a failing step up to ``cuts`` times (temperature at the
    reduced points interpolated linearly), like the full-order solver. Returns the state at
    ``t_new`` and the total reduced Newton iterations."""
    try:
        return reduced_step(op, st, T, t_new, scale)
    except ReducedDivergence:
        if cuts <= 0:
            raise
    t_mid, T_mid = 0.5 * (st.time + t_new), 0.5 * (T_old + T)
    mid, i1 = reduced_step_cut(op, st, T_old, T_mid, t_mid, scale, cuts - 1)
    end, i2 = reduced_step_cut(op, mid, T_mid, T, t_new, scale, cuts - 1)
    return end, i1 + i2


def indicator(op: ReducedOperator, z: np.ndarray) -> tuple[float, np.ndarray]:
    """Gappy-POD relative residual of p at the reduced points, and the Gappy coefficients."""
    return gappy_indicator(op.gappy, z[:, op.p_column], op.dual_floor)


class StressResidual:
    """``||s_M - Q Q^T s_M|| / ||s_M||`` of the stresses ``s_M`` (q, 6) at the reduced
    points, ``Q`` an orthonormal basis of the stress basis' rows there (``sigma``, q 6 x
    s, read once per model state: collective over the model's communicator): whether the
    stresses lie in the span of the training's (and the enrichments') stresses. Unlike
    the residual of p it sees elastic steps (a law with a yield threshold: p = 0)."""

    def __init__(self, model):
        pts = model.operator.points
        rows = entity_rows(pts, 6)
        self.Q = np.linalg.qr(model.bases.sigma.rows(rows))[0]

    def __call__(self, stress: np.ndarray) -> float:
        s = np.ravel(stress)
        norm = float(np.linalg.norm(s))
        return 0.0 if norm == 0.0 else float(np.linalg.norm(s - self.Q @ (self.Q.T @ s))) / norm


def gappy_indicator(gappy: GappyPOD, pM: np.ndarray, floor: float) -> tuple[float, np.ndarray]:
    """``|Psi_M c - p_M| / max(|p_M|, floor)`` with c the Gappy-POD fit of ``p_M`` (the
    floor keeps the indicator of a virgin state, p ~ 0, from dividing by zero)."""
    c, rel = gappy.fit(pM)
    norm = float(np.linalg.norm(pM))
    return rel * norm / max(norm, floor), c


class AccumulatedIndicator:
    """``online.indicator: accumulated``: sum over the steps of the Gappy-POD residual of the
    increment of p at the reduced points, relative to the largest ``|p_M|`` so far,
    ``eta_i = sum_{k<=i} |Psi_M c_k - dp_k| / max_{s<=k} |p_M(s)|`` (floored like
    :func:`gappy_indicator`). The part of each creep increment the p basis cannot
    represent, accumulated as the creep error is; :meth:`restart` after an enrichment (its
    state is the full-order one, at new points)."""

    def __init__(self, floor: float):
        self.floor, self.total, self.p_prev, self.p_max = floor, 0.0, None, 0.0

    @classmethod
    def of(cls, meta: dict) -> AccumulatedIndicator | None:
        """A fresh one if the model of ``meta`` uses it (``meta["indicator"]``), else None."""
        if meta.get("indicator", "p") != "accumulated":
            return None
        return cls(meta["dual_floor"])

    def restart(self, pM: np.ndarray) -> None:
        self.total, self.p_prev = 0.0, np.array(pM, float)
        self.p_max = float(np.linalg.norm(pM))

    def step(self, gappy: GappyPOD, pM: np.ndarray) -> float:
        prev = np.zeros_like(pM) if self.p_prev is None else self.p_prev
        d = pM - prev
        _, rel = gappy.fit(d)
        self.p_max = max(self.p_max, float(np.linalg.norm(pM)))
        self.total += rel * float(np.linalg.norm(d)) / max(self.p_max, self.floor)
        self.p_prev = np.array(pM, float)
        return self.total


def initial_state(op: ReducedOperator, t0: float) -> StepState:
    """The virgin state at ``t0``: zero coordinates, strain and internal variables."""
    nq = op.n_points
    return StepState(float(t0), np.zeros(op.n_modes), np.zeros((nq, 6)),
                     op.law.initial_state(nq))


def march(times: np.ndarray, st: StepState, step, record) -> StepState:
    """The time loop of every reduced solve (a model, local models, a cross-validation
    fold): for i = 1 .. n-1, ``new, info = step(i, st)``, ``record(i, new, info)``, go on
    from ``new``. Returns the last state."""
    for i in range(1, times.size):  # loop over time steps
        new, info = step(i, st)
        record(i, new, info)
        st = new
    return st


def solve(model, temperature, times, *, scale: float = 1.0, enrich: bool = False,
          tol: float | None = None, comm: MPI.Comm | None = None,
          max_enrichments: int = 20, verbose: bool = True) -> OnlineResult:
    """Reduced solve over ``times`` (``times[0]``: virgin initial state).

    Parameters
    ----------
    model : :class:`~rom.online.model.ReducedModel`
    temperature : nodal temperature history (n_times, n_nodes) [K], or a callable
        ``T(x, y, z, t)`` (numpy arrays, vectorized), or a formula string in x, y, z [m], t [s]
        (same syntax as the case file). Only evaluated at the reduced points' element nodes,
        except during enrichment.
    times : (n_times,) increasing times [s]
    scale : factor on the mechanical loads of the case
    enrich : when the indicator exceeds ``tol`` (or the reduced Newton fails), take one
        high-fidelity step, update the bases and the reduced quadrature, and go on
        (the model is modified in place; :meth:`ReducedModel.save` keeps it)
    tol : indicator tolerance (default: the model's ``indicator_tol``)
    comm : communicator of the high-fidelity steps: the model's (``rom.load(path,
        comm=comm)``; ``None``: the model's)
    max_enrichments : safety limit of high-fidelity steps per solve
    verbose : one line per enrichment on rank 0 of ``comm`` (stderr): why, how long, the
        split of its time, the new sizes (an enrichment takes seconds to minutes)

    Returns
    -------
    :class:`~rom.online.result.OnlineResult`
    """
    temperature, times = _check_inputs(model, temperature, times, tol)
    tol = model.meta["indicator_tol"] if tol is None else float(tol)
    hf_comm = model.check_comm(comm, "enrichment") if enrich else model.comm
    op = model.operator
    st = initial_state(op, times[0])
    res = OnlineResult(model, times)
    res.record(st, 0, 0.0, None, 0, 0.0)
    acc = AccumulatedIndicator.of(model.meta)
    T_prev = [temperature_at_points(op, temperature, float(times[0]), 0)]
    tol_s = model.meta.get("stress_indicator_tol")
    stress_res = [StressResidual(model) if tol_s is not None else None]

    def step(i: int, st: StepState):
        op = model.operator
        t = float(times[i])
        t0 = time.perf_counter()
        T = temperature_at_points(op, temperature, t, i)
        try:
            new, its = reduced_step_cut(op, st, T_prev[0], T, t, scale)
            eta, c = indicator(op, new.z)
            if acc is not None:
                eta = acc.step(op.gappy, new.z[:, op.p_column])
            eta_s = 0.0 if stress_res[0] is None else stress_res[0](new.extra["stress"])
            failed = False
        except ReducedDivergence:
            if not enrich:
                raise
            new, its, eta, c, failed, eta_s = None, -1, np.inf, None, True, np.inf
        dt_red = time.perf_counter() - t0
        res.stress_indicator[i] = eta_s
        need = enrich and (failed or eta > tol or (tol_s is not None and eta_s > tol_s))
        if enrich and hf_comm.size > 1:
            need = hf_comm.bcast(need, root=0)     # one decision for the collective HF step
        if need:
            why = None if failed or eta > tol else f"stress residual {eta_s:.3g} > {tol_s:.3g}"
            new, eta, c = _enrich(model, res, st, new, temperature, times, i, scale, hf_comm,
                                  eta, failed, tol, acc, max_enrichments, verbose, why)
            its = -1 if failed else its
            if stress_res[0] is not None:      # the new stress basis and points
                stress_res[0] = StressResidual(model)
                res.stress_indicator[i] = stress_res[0](new.extra["stress"])
            # after an enrichment the reduced points changed: the temperature there
            T = temperature_at_points(model.operator, temperature, t, i)
        T_prev[0] = T
        return new, (its, eta, c, dt_red)

    march(times, st, step, lambda i, new, info: res.record(new, info[0], info[1], info[2], i,
                                                            info[3]))
    return res


def _enrich(model, res, st, new, temperature, times, i, scale, hf_comm, eta, failed, tol,
            acc, max_enrichments, verbose, why=None):
    """One enrichment of :func:`solve` at step i: (state, indicator, coefficients)."""
    if len(res.enrichments) >= max_enrichments:
        raise ReducedDivergence(f"more than {max_enrichments} enrichments in one "
                                "solve: the reduced model cannot follow this loading")
    from .enrich import enrich_step, enrichment_event
    t = float(times[i])
    t1 = time.perf_counter()
    eta_before = eta
    new = enrich_step(model, st, temperature_at_nodes(model, temperature, t, i), t,
                      scale, hf_comm, T_old=temperature_at_nodes(
                          model, temperature, float(times[i - 1]), i - 1),
                      guess=None if new is None else new.q)
    op = model.operator
    eta, c = indicator(op, new.z)
    if acc is not None:               # the full-order state: no drift so far
        acc.restart(new.z[:, op.p_column])
        eta = 0.0
    ev = enrichment_event(model, i, eta_before, time.perf_counter() - t1)
    res.enrichments.append(ev)
    if verbose:
        why = why or ("reduced Newton failed" if failed
                      else f"indicator {eta_before:.3g} > {tol:.3g}")
        rank0_print(hf_comm, f"rom.online: step {i}/{times.size - 1}, {why}: enrichment "
                    f"{len(res.enrichments)} in {ev['seconds']:.1f} s (full-order step "
                    f"{ev['full_order_step_seconds']:.1f} s, bases "
                    f"{ev['bases_seconds']:.1f} s, ECM {ev['ecm_seconds']:.1f} s); "
                    f"{ev['n_modes']} modes, {ev['n_points']} points, indicator now "
                    f"{eta:.3g}", file=sys.stderr)
    return new, eta, c

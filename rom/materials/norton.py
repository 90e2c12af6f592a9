"""Norton elasto-viscoplasticity, backward Euler with a local Newton and the consistent tangent.

Flow rule (von Mises, no threshold):
``d eps_vp / dt = (sigma_eq / K(T))^n(T) * 3/2 s / sigma_eq``, ``dp/dt = (sigma_eq / K)^n``.

Backward Euler over a step reduces, for isotropic elasticity, to a radial return on
one scalar: with the elastic trial stress (equivalent stress ``q_tr``) the end-of-step
equivalent stress ``x`` solves ``q_tr - x - 3 G dt (x / K)^n = 0`` (solved by Newton
from the right, where it converges monotonically: the function is concave and
decreasing), then ``dp = (q_tr - x) / (3 G)``.
"""
from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import ClassVar

import numpy as np

from .base import MaterialError, Table, as_table
from .elastic import ThermoElastic
from .tensors import IsotropicTangent, mandel_to_strain, mandel_to_stress, strain_to_mandel

__all__ = ["Norton"]

_ONE = np.array([1.0, 1.0, 1.0, 0.0, 0.0, 0.0])


class Norton(ThermoElastic):
    """Thermo-elasto-viscoplastic Norton law (small strain, isotropic).

    Parameters
    ----------
    E, nu, alpha, T_ref : as :class:`~rom.materials.elastic.ThermoElastic`
    K : Norton stress scale [Pa s^(1/n)] (> 0), constant or table in T
    n : Norton exponent [-] (>= 1), constant or table in T
    rtol : relative tolerance of the local Newton on the equivalent stress
    max_iter : local Newton iterations before :class:`MaterialError`

    Internal variables (columns of the state, ``state_names``):
    ``viscoplastic_strain`` (6, Voigt with engineering shears) and ``p``
    (cumulated viscoplastic strain, 1).
    """

    n_state = 7
    split_tangent = True
    step_work = True
    state_names: ClassVar[Mapping[str, tuple[slice, str]]] = MappingProxyType(
        {"viscoplastic_strain": (slice(0, 6), "1"), "p": (slice(6, 7), "1")})

    def __init__(self, E, nu, alpha=0.0, T_ref: float = 293.15, *, K, n,
                 rtol: float = 1e-13, max_iter: int = 100):
        super().__init__(E, nu, alpha, T_ref)
        self.K: Table = as_table(K, "K")
        self.n: Table = as_table(n, "n")
        self.K.check(0.0, None, what="positive (Norton K must be > 0)")
        self.n.check(1.0, None, lo_open=False, what=">= 1 (Norton exponent)")
        self.rtol = float(rtol)
        self.max_iter = int(max_iter)

    def initial_state(self, n: int) -> np.ndarray:
        """Zero viscoplastic strain and p: (n, 7)."""
        return np.zeros((n, self.n_state))

    def integrate(self, strain_old: np.ndarray, strain_new: np.ndarray, state_old: np.ndarray,
                  temperature: np.ndarray, dt: float, *, split_tangent: bool = False,
                  work: dict | None = None):
        """One backward-Euler step at every point.

        Parameters
        ----------
        strain_old, strain_new : (n, 6) total strains (engineering shears) [-]
        state_old : (n, 7) internal variables at the start of the step
        temperature : (n,) temperature at the end of the step [K]
        dt : time step [s] (>= 0; 0 gives the elastic response)
        split_tangent : return the tangent as an :class:`IsotropicTangent` (its three terms)
        work : a dict the caller keeps over calls (empty at the first): while
            ``temperature`` and ``state_old`` are the same arrays as at the previous
            call (unchanged: the iterations of a Newton on one step) and ``dt`` is the
            same, the temperature-dependent properties are not recomputed; the local
            Newton starts from the previous call's equivalent stress (3-4 iterations
            instead of 5-6; any start converges). The results agree with those without
            it to the local Newton's ``rtol``.

        Returns
        -------
        stress (n, 6) [Pa], state_new (n, 7), tangent (n, 6, 6) [Pa] (consistent)

        Raises
        ------
        MaterialError : the local Newton did not converge (names the first point)
        """
        strain_new = np.asarray(strain_new, float)
        state_old = np.asarray(state_old, float)
        props = None if work is None else work.get("props")
        if (props is None or props[0] is not temperature or props[1] is not state_old
                or props[2] != dt):
            T = np.broadcast_to(np.asarray(temperature, float), strain_new.shape[:-1])
            E, nu, K, nexp = self.E(T), self.nu(T), self.K(T), self.n(T)
            props = (temperature, state_old, dt, K, nexp, E / (2 * (1 + nu)),
                     E / (3 * (1 - 2 * nu)), self.thermal_strain(T) + state_old[..., :6])
            if work is not None:
                work["props"] = props
        K, nexp, G, bulk, eps_in = props[3:]
        evp_old = state_old[..., :6]
        eps_e = strain_to_mandel(strain_new - eps_in)
        tr = eps_e[..., :3].sum(-1)
        e_dev = eps_e - (tr / 3.0)[..., None] * _ONE
        s_tr = 2 * G[..., None] * e_dev                                  # Mandel deviator
        q_tr = np.sqrt(1.5 * np.einsum("...i,...i->...", s_tr, s_tr))
        shape = q_tr.shape
        start = None if work is None else work.get("x")
        if start is not None and start.size != q_tr.size:
            start = None
        x, h = self._solve_scalar(q_tr.ravel(), G.ravel(), K.ravel(), nexp.ravel(), float(dt),
                                  start)
        if work is not None:
            work["x"] = x
        x, h = x.reshape(shape), h.reshape(shape)
        dp = (q_tr - x) / (3 * G)
        safe = np.where(q_tr > 0, q_tr, 1.0)
        N = 1.5 * s_tr / safe[..., None]                                 # Mandel flow direction
        N = np.where((q_tr > 0)[..., None], N, 0.0)
        sig = bulk[..., None] * tr[..., None] * _ONE + s_tr * (x / safe)[..., None]
        state_new = np.empty_like(state_old)
        state_new[..., :6] = evp_old + mandel_to_strain(dp[..., None] * N)
        state_new[..., 6] = state_old[..., 6] + dp
        # consistent tangent (Mandel): C - 4G^2 h/(1+3Gh) N N - 6G^2 dp/q_tr (I_dev - 2/3 N N)
        # = bulk 1 1 + (2G - b) I_dev + (2b/3 - a) N N, with a = 4G^2 h/(1+3Gh), b = 6G^2 dp/q_tr
        a = 4 * G**2 * h / (1 + 3 * G * h)
        b = 6 * G**2 * dp / safe
        beta = 2 * G - b
        D = IsotropicTangent(bulk - beta / 3.0, beta, 2.0 * b / 3.0 - a, strain_to_mandel(N))
        return mandel_to_stress(sig), state_new, (D if split_tangent else D.full())

    def _solve_scalar(self, q_tr, G, K, nexp, dt, start=None):
        """Solve q_tr - x - 3 G dt (x/K)^n = 0 for x in [0, q_tr]; also h = d dp / d x.

        ``start``: first iterate (clipped to [0, q_tr]; the function is concave and
        decreasing, so a start left of the root goes right of it in one step and Newton
        then converges monotonically)."""
        x = q_tr.copy()
        if dt > 0:
            c = 3 * G * dt
            if start is not None:
                x = np.clip(start, 0.0, q_tr)
            else:
                with np.errstate(divide="ignore", over="ignore"):
                    # where the creep term alone equals q_tr: to the right of the root
                    x0 = K * (q_tr / c) ** (1.0 / nexp)
                x = np.minimum(q_tr, x0)
            # Newton on the points not converged yet, compacted when some converge
            idx = np.flatnonzero(q_tr > 0)
            xa, qa, Ka, na, ca = x[idx], q_tr[idx], K[idx], nexp[idx], c[idx]
            for _ in range(self.max_iter):
                if idx.size == 0:
                    break
                r = xa / Ka
                rn1 = r ** (na - 1)
                step = (qa - xa - ca * rn1 * r) / (-1.0 - ca * na * rn1 / Ka)
                xa = np.maximum(xa - step, 0.0)
                done = np.abs(step) <= self.rtol * qa
                if done.any():
                    x[idx[done]] = xa[done]
                    keep = ~done
                    idx, xa, qa, Ka, na, ca = idx[keep], xa[keep], qa[keep], Ka[keep], na[keep], ca[keep]
            if idx.size:
                k = int(idx.min())
                raise MaterialError(
                    f"Norton: local Newton did not converge in {self.max_iter} iterations at "
                    f"{idx.size} integration point(s), first flat index {k} "
                    f"(trial von Mises stress {q_tr.flat[k]:.6g} Pa, dt = {dt:g} s)")
            with np.errstate(divide="ignore", invalid="ignore"):
                h = np.where(x > 0, dt * nexp * (x / K) ** (nexp - 1) / K, 0.0)
        else:
            h = np.zeros_like(q_tr)
        if not np.all(np.isfinite(x)):
            k = int(np.flatnonzero(~np.isfinite(x))[0])
            raise MaterialError(f"Norton: non-finite stress at integration point {k} "
                                f"(trial von Mises stress {q_tr.flat[k]:.6g} Pa)")
        return x, h

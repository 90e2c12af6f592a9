"""Chaboche unified viscoplasticity: isotropic and two Armstrong-Frederick kinematic hardenings.

Small strain, every parameter a table in T (docs/fom.md, "Chaboche"):

- ``eps = eps_e + eps_th + eps_vp``, ``sigma = lambda tr(eps_e) I + 2 G eps_e``
- ``f = J(sigma - X) - R - sigma_y``, ``J(s) = sqrt(3/2 dev(s) : dev(s))``
- ``dp/dt = <f / K>^n``, ``d eps_vp / dt = 3/2 dp/dt dev(sigma - X) / J(sigma - X)``
- ``R = Q (1 - exp(-b p))``; ``X = X1 + X2``,
  ``dXi/dt = 2/3 Ci d eps_vp/dt - Di dp/dt Xi`` (terms in dT/dt neglected)

Backward Euler with the parameters at the end-of-step temperature. With the unknown
``x = f`` at the end of the step (the overstress; ``dp = dt (x / K)^n``), the back
stresses ``Xi = (Xi_old + 2/3 Ci dp N) / (1 + Di dp)`` and the deviatoric stress
``s = s_tr - 2 G dp N`` leave ``xi = s - X`` parallel to
``xi_tr(dp) = s_tr - sum_i Xi_old / (1 + Di dp)``, so the step reduces to one scalar
equation per point

    Phi(x) = J(xi_tr(dp)) - (3 G + sum_i Ci / (1 + Di dp)) dp - R(p_old + dp) - sigma_y - x = 0,

solved by Newton safeguarded by bisection on ``[0, f_tr + sum_i J(Xi_old)]`` (where Phi
changes sign). With ``sigma_y = Q = C1 = C2 = 0`` this is the equation of
:class:`~rom.materials.norton.Norton`. The consistent tangent (Mandel) is

    bulk 1 1 + 2 G (1 - c) I_dev + 4 G c / 3 N N - k (2 G N + c v_perp) N,

``c = 3 G dp / J(xi_tr)``, ``k = 2 G h / M`` (``h = d dp / d x``, ``M = -dPhi/dx``),
``v = sum_i Di Xi_old / (1 + Di dp)^2`` and ``v_perp = v - 2/3 (N : v) N``: not symmetric
where the back stresses recover (``Di Xi_old`` not parallel to N), so the full-order solver
uses GMRES with it (``symmetric_tangent = False``).
"""
from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import ClassVar

import numpy as np

from .base import MaterialError, as_table
from .elastic import ThermoElastic
from .tensors import (
    I_DEV,
    mandel_to_strain,
    mandel_to_stress,
    strain_to_mandel,
    stress_to_mandel,
    tangent_from_mandel,
)

__all__ = ["Chaboche"]

_ONE = np.array([1.0, 1.0, 1.0, 0.0, 0.0, 0.0])
_ONE_ONE = np.outer(_ONE, _ONE)
#: the parameters of the law beyond the elastic ones (case-file names, in order)
PARAMETERS = ("K", "n", "sigma_y", "Q", "b", "C1", "D1", "C2", "D2")


class Chaboche(ThermoElastic):
    """Thermo-elasto-viscoplastic Chaboche law (small strain, isotropic elasticity).

    Parameters
    ----------
    E, nu, alpha, T_ref : as :class:`~rom.materials.elastic.ThermoElastic`
    K : viscous stress scale [Pa s^(1/n)] (> 0)
    n : viscous exponent [-] (>= 1)
    sigma_y : initial yield stress [Pa] (>= 0)
    Q : saturated isotropic hardening [Pa] (< 0: cyclic softening, Q > -sigma_y)
    b : rate of the isotropic hardening [-] (>= 0)
    C1, C2 : kinematic hardening moduli [Pa] (>= 0)
    D1, D2 : dynamic recovery of the back stresses [-] (>= 0)
    rtol : relative tolerance of the local Newton on the overstress
    max_iter : local Newton iterations before :class:`MaterialError`

    Every parameter is a constant or a table in T (:func:`~rom.materials.base.as_table`).
    Internal variables (``state_names``): ``viscoplastic_strain`` (6, Voigt with engineering
    shears), ``p`` (1), ``X1`` and ``X2`` (6 each, Voigt stresses [Pa]).
    """

    n_state = 19
    split_tangent = False
    step_work = False
    symmetric_tangent = False
    state_names: ClassVar[Mapping[str, tuple[slice, str]]] = MappingProxyType(
        {"viscoplastic_strain": (slice(0, 6), "1"), "p": (slice(6, 7), "1"),
         "X1": (slice(7, 13), "Pa"), "X2": (slice(13, 19), "Pa")})

    def __init__(self, E, nu, alpha=0.0, T_ref: float = 293.15, *, K, n, sigma_y=0.0, Q=0.0,
                 b=0.0, C1=0.0, D1=0.0, C2=0.0, D2=0.0, rtol: float = 1e-13,
                 max_iter: int = 100):
        super().__init__(E, nu, alpha, T_ref)
        given = {"K": K, "n": n, "sigma_y": sigma_y, "Q": Q, "b": b, "C1": C1, "D1": D1,
                 "C2": C2, "D2": D2}
        for name, value in given.items():        # 9 parameters
            setattr(self, name, as_table(value, name))
        self.K.check(0.0, None, what="positive (Chaboche K must be > 0)")
        self.n.check(1.0, None, lo_open=False, what=">= 1 (Chaboche exponent n)")
        for name in ("sigma_y", "b", "C1", "D1", "C2", "D2"):   # the non-negative ones
            getattr(self, name).check(0.0, None, lo_open=False, what=">= 0")
        bad = (self.Q.values < 0) & (self.Q.values <= -self.sigma_y(self.Q.temperatures))
        if bad.any():
            k = int(np.argmax(bad))
            raise MaterialError(f"Q: value {self.Q.values[k]:g} at T = "
                                f"{self.Q.temperatures[k]:g} K is not > -sigma_y (softening "
                                "below a zero yield stress)")
        self.rtol = float(rtol)
        self.max_iter = int(max_iter)

    def initial_state(self, n: int) -> np.ndarray:
        """Zero viscoplastic strain, p and back stresses: (n, 19)."""
        return np.zeros((n, self.n_state))

    def integrate(self, strain_old: np.ndarray, strain_new: np.ndarray, state_old: np.ndarray,
                  temperature: np.ndarray, dt: float):
        """One backward-Euler step at every point.

        Parameters
        ----------
        strain_old, strain_new : (n, 6) total strains (engineering shears) [-]
        state_old : (n, 19) internal variables at the start of the step
        temperature : (n,) temperature at the end of the step [K]
        dt : time step [s] (>= 0; 0 gives the elastic response)

        Returns
        -------
        stress (n, 6) [Pa], state_new (n, 19), tangent (n, 6, 6) [Pa] (consistent, not
        symmetric where the back stresses recover)

        Raises
        ------
        MaterialError : the local Newton did not converge (names the first point)
        """
        strain_new = np.asarray(strain_new, float)
        state_old = np.asarray(state_old, float)
        shape = strain_new.shape[:-1]
        T = np.broadcast_to(np.asarray(temperature, float), shape)
        E, nu = self.E(T), self.nu(T)
        G, bulk = E / (2 * (1 + nu)), E / (3 * (1 - 2 * nu))
        eps_e = strain_to_mandel(strain_new - self.thermal_strain(T) - state_old[..., :6])
        tr = eps_e[..., :3].sum(-1)
        s_tr = 2 * G[..., None] * (eps_e - (tr / 3.0)[..., None] * _ONE)
        X_old = np.stack([stress_to_mandel(state_old[..., 7:13]),
                          stress_to_mandel(state_old[..., 13:19])])      # (2, ..., 6)
        p_old = state_old[..., 6]
        sy, Q, b = self.sigma_y(T), self.Q(T), self.b(T)
        xi0 = s_tr - X_old.sum(0)
        J0 = np.sqrt(1.5 * np.einsum("...i,...i->...", xi0, xi0))
        f_tr = J0 - Q * (1 - np.exp(-b * p_old)) - sy
        active = np.flatnonzero((f_tr > 0).ravel()) if dt > 0 else np.zeros(0, np.int64)

        D_M = (bulk[..., None, None] * _ONE_ONE + 2 * G[..., None, None] * I_DEV).reshape(-1, 6, 6)
        sig_dev = s_tr.reshape(-1, 6).copy()
        state_new = state_old.reshape(-1, self.n_state).copy()
        if active.size:
            flat = lambda a: a.reshape(-1)[active]
            Cs = np.stack([self.C1(T), self.C2(T)]).reshape(2, -1)[:, active]
            Ds = np.stack([self.D1(T), self.D2(T)]).reshape(2, -1)[:, active]
            s = s_tr.reshape(-1, 6)[active]
            Xo = X_old.reshape(2, -1, 6)[:, active]
            g = _Scalar(s, Xo, flat(G), flat(self.K(T)), flat(self.n(T)), flat(sy), flat(Q),
                        flat(b), Cs, Ds, flat(p_old), float(dt))
            x = self._solve(g, flat(f_tr), flat(J0), Xo)
            dp, a, Jt, dJt, dH, Rp, h = g.terms(x)
            xi = s - np.einsum("ig,igk->gk", a, Xo)
            N = 1.5 * xi / Jt[:, None]                                   # Mandel direction
            Ga = g.G
            sig_dev[active] = s - (2 * Ga * dp)[:, None] * N
            Xn = a[:, :, None] * (Xo + (2.0 / 3.0) * (Cs * dp)[:, :, None] * N)
            st = state_new[active]
            st[:, :6] += mandel_to_strain(dp[:, None] * N)
            st[:, 6] += dp
            st[:, 7:13] = mandel_to_stress(Xn[0])
            st[:, 13:19] = mandel_to_stress(Xn[1])
            state_new[active] = st
            # consistent tangent (module docstring)
            M = 1.0 + (3 * Ga + dH + Rp - dJt) * h
            k = 2 * Ga * h / M
            c = 3 * Ga * dp / Jt
            v = np.einsum("ig,igk->gk", Ds * a**2, Xo)
            v_perp = v - (2.0 / 3.0) * np.einsum("gk,gk->g", N, v)[:, None] * N
            NN = N[:, :, None] * N[:, None, :]
            D_M[active] += ((-2 * Ga * c)[:, None, None] * I_DEV
                            + (4 * Ga * c / 3.0)[:, None, None] * NN
                            - k[:, None, None] * ((2 * Ga)[:, None, None] * NN
                                                  + c[:, None, None] * v_perp[:, :, None]
                                                  * N[:, None, :]))
        sig = bulk.reshape(-1, 1) * tr.reshape(-1, 1) * _ONE + sig_dev
        return (mandel_to_stress(sig).reshape(shape + (6,)),
                state_new.reshape(shape + (self.n_state,)),
                tangent_from_mandel(D_M).reshape(shape + (6, 6)))

    def _solve(self, g: _Scalar, f_tr: np.ndarray, J0: np.ndarray, Xo: np.ndarray) -> np.ndarray:
        """The overstress x at the end of the step, ``Phi(x) = 0`` on ``[0, hi]``: Newton
        from ``min(f_tr, K (f_tr / (3 G dt))^(1/n))`` (Norton's start), a bisection step
        whenever Newton leaves the bracket."""
        lo = np.zeros_like(f_tr)
        hi = f_tr + np.sqrt(1.5 * np.einsum("igk,igk->ig", Xo, Xo)).sum(0)
        with np.errstate(divide="ignore", over="ignore"):
            x = np.minimum(f_tr, g.K * (f_tr / (3 * g.G * g.dt)) ** (1.0 / g.nexp))
        out = np.empty_like(x)
        idx = np.arange(len(x))
        scale = np.maximum(J0, f_tr)
        for _ in range(self.max_iter):
            if idx.size == 0:
                break
            F, dF = g.residual(x, idx)
            lo = np.where(F > 0, x, lo)
            hi = np.where(F > 0, hi, x)
            with np.errstate(divide="ignore", invalid="ignore"):
                xn = x - F / dF
            bad = ~((xn >= lo) & (xn <= hi)) | ~np.isfinite(xn)
            xn = np.where(bad, 0.5 * (lo + hi), xn)
            done = (np.abs(xn - x) <= self.rtol * scale) | (F == 0)
            x = xn
            if done.any():
                out[idx[done]] = x[done]
                keep = ~done
                idx, x, lo, hi, scale = idx[keep], x[keep], lo[keep], hi[keep], scale[keep]
        if idx.size:
            k = int(idx.min())
            raise MaterialError(
                f"Chaboche: local Newton did not converge in {self.max_iter} iterations at "
                f"{idx.size} integration point(s), first active index {k} (trial overstress "
                f"{f_tr[k]:.6g} Pa, dt = {g.dt:g} s)")
        if not np.all(np.isfinite(out)):
            k = int(np.flatnonzero(~np.isfinite(out))[0])
            raise MaterialError(f"Chaboche: non-finite overstress at active point {k} "
                                f"(trial overstress {f_tr[k]:.6g} Pa)")
        return out


class _Scalar:
    """``Phi(x)`` of the points that flow, from their scalar products (no 6-vectors in the
    iterations): ``J(xi_tr(dp))^2 = 3/2 (s.s - 2 sum_i a_i s.Xi + sum_ij a_i a_j Xi.Xj)``,
    ``a_i = 1 / (1 + Di dp)``."""

    def __init__(self, s, Xo, G, K, nexp, sy, Q, b, C, D, p_old, dt):
        self.G, self.K, self.nexp, self.sy, self.Q, self.b = G, K, nexp, sy, Q, b
        self.C, self.D, self.p_old, self.dt = C, D, p_old, dt
        self.ss = np.einsum("gk,gk->g", s, s)
        self.sX = np.einsum("gk,igk->ig", s, Xo)                   # (2, g)
        self.XX = np.einsum("igk,jgk->ijg", Xo, Xo)                 # (2, 2, g)

    def terms(self, x, idx=None):
        """dp, a, J(xi_tr), dJ/ddp, d(H dp)/ddp, R', h at the points ``idx`` (all: None)."""
        sel = (lambda v: v) if idx is None else (lambda v: v[..., idx])
        K, nexp, C, D = sel(self.K), sel(self.nexp), sel(self.C), sel(self.D)
        r = x / K
        rn1 = r ** (nexp - 1)
        dp = self.dt * rn1 * r
        a = 1.0 / (1.0 + D * dp)                                   # (2, g)
        sX, XX = sel(self.sX), sel(self.XX)
        aXX = np.einsum("jg,ijg->ig", a, XX)                       # sum_j a_j Xi.Xj
        q2 = sel(self.ss) - 2 * (a * sX).sum(0) + (a * aXX).sum(0)
        Jt = np.sqrt(1.5 * np.maximum(q2, 0.0))
        Jsafe = np.where(Jt > 0, Jt, 1.0)
        dJt = 1.5 * (D * a**2 * (sX - aXX)).sum(0) / Jsafe
        dH = (C * a**2).sum(0)
        Q, b = sel(self.Q), sel(self.b)
        Rp = Q * b * np.exp(-b * (sel(self.p_old) + dp))
        h = self.dt * nexp * rn1 / K
        return dp, a, Jt, dJt, dH, Rp, h

    def residual(self, x, idx):
        """Phi(x) and dPhi/dx at the points ``idx``."""
        dp, a, Jt, dJt, dH, Rp, h = self.terms(x, idx)
        G, C = self.G[idx], self.C[:, idx]
        Q, b = self.Q[idx], self.b[idx]
        R = Q * (1 - np.exp(-b * (self.p_old[idx] + dp)))
        F = Jt - (3 * G + (C * a).sum(0)) * dp - R - self.sy[idx] - x
        dF = (dJt - 3 * G - dH - Rp) * h - 1.0
        return F, dF

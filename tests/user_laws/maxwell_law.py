"""A user's law kept outside the package (tests/test_user_law.py imports it by the case-file
form ``material.law: maxwell_law:Maxwell``): thermo-elasticity with linear (Maxwell)
viscosity, ``d eps_vp / dt = dev(sigma) / (2 eta)``, written with numpy alone.

Backward Euler in closed form: ``dev(sigma) = 2 G e_tr / (1 + G dt / eta)``."""
from __future__ import annotations

import numpy as np

_ONE = np.array([1.0, 1.0, 1.0, 0.0, 0.0, 0.0])
_HALF_SHEAR = np.array([1.0, 1.0, 1.0, 0.5, 0.5, 0.5])   # engineering -> tensor shears


class Maxwell:
    """Parameters (tables in T, called with T): E, nu, alpha, T_ref and the viscosity eta
    [Pa s]. Internal variables: viscoplastic_strain (6, engineering shears), p (1)."""

    n_state = 7
    state_names = {"viscoplastic_strain": (slice(0, 6), "1"), "p": (slice(6, 7), "1")}

    def __init__(self, E, nu, alpha, T_ref, eta):
        self.E, self.nu, self.alpha, self.T_ref, self.eta = E, nu, alpha, float(T_ref), eta

    def initial_state(self, n):
        return np.zeros((n, self.n_state))

    def integrate(self, strain_old, strain_new, state_old, temperature, dt):
        T = np.asarray(temperature, float)
        E, nu, eta = self.E(T), self.nu(T), self.eta(T)
        G, bulk = E / (2 * (1 + nu)), E / (3 * (1 - 2 * nu))
        eps = strain_new - (self.alpha(T) * (T - self.T_ref))[:, None] * _ONE - state_old[:, :6]
        tr = eps[:, :3].sum(1)
        e_dev = (eps - (tr / 3)[:, None] * _ONE) * _HALF_SHEAR       # tensor components
        f = 1.0 / (1.0 + G * dt / eta)
        s = 2 * G[:, None] * f[:, None] * e_dev
        stress = s + (bulk * tr)[:, None] * _ONE
        seq = np.sqrt(1.5 * ((s**2) / _HALF_SHEAR).sum(1))        # s : s, shears twice
        state = state_old.copy()
        state[:, :6] += dt * s / (2 * eta[:, None]) / _HALF_SHEAR   # back to engineering
        state[:, 6] += dt * seq / (3 * eta)
        Gs = G * f
        D = np.zeros((len(T), 6, 6))
        D[:, :3, :3] = (bulk - 2 * Gs / 3)[:, None, None]
        idx = np.arange(3)
        D[:, idx, idx] += 2 * Gs[:, None]
        D[:, idx + 3, idx + 3] = Gs[:, None]
        return stress, state, D


class NoIntegrate:
    """Not a law: no integrate()."""

    n_state = 0
    state_names = {}

    def __init__(self, **_):
        pass

    def initial_state(self, n):
        return np.zeros((n, 0))

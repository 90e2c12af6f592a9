"""Isotropic thermo-elasticity with temperature-dependent E, nu and alpha."""
from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import ClassVar

import numpy as np

from .base import MaterialError, Table, as_table
from .tensors import IsotropicTangent

__all__ = ["ThermoElastic", "isotropic_stiffness"]

_ONE = np.array([1.0, 1.0, 1.0, 0.0, 0.0, 0.0])


def _lame(E: np.ndarray, nu: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Lame's lambda and the shear modulus G [Pa]."""
    return E * nu / ((1 + nu) * (1 - 2 * nu)), E / (2 * (1 + nu))


def isotropic_stiffness(E: np.ndarray, nu: np.ndarray) -> np.ndarray:
    """Voigt stiffness (..., 6, 6) [Pa] from Young's modulus E (...) [Pa] and Poisson ratio nu (...).

    Engineering shear strains: the shear diagonal is G = E / (2 (1 + nu)).
    """
    E, nu = np.broadcast_arrays(np.asarray(E, float), np.asarray(nu, float))
    lam, G = _lame(E, nu)
    D = np.zeros(E.shape + (6, 6))
    D[..., :3, :3] = lam[..., None, None]
    idx = np.arange(3)
    D[..., idx, idx] += 2 * G[..., None]
    D[..., idx + 3, idx + 3] = G[..., None]
    return D


class ThermoElastic:
    """Isotropic linear thermo-elasticity, total (secant) form.

    ``stress = D(T) : (strain - alpha(T) (T - T_ref) 1)``, where ``alpha`` is the
    *secant* (mean) expansion coefficient measured from ``T_ref``, the stress-free
    temperature. Properties are constants or :class:`~rom.materials.base.Table`
    (piecewise linear in T, constant outside the table).

    Parameters
    ----------
    E : Young's modulus [Pa] (> 0)
    nu : Poisson ratio [-] (in (-1, 0.5))
    alpha : secant thermal expansion coefficient [1/K]
    T_ref : reference (stress-free) temperature [K]
    """

    n_state = 0
    split_tangent = True
    step_work = False           # no per-step scratch (Norton's ``work``)
    state_names: ClassVar[Mapping[str, tuple[slice, str]]] = MappingProxyType({})

    def __init__(self, E, nu, alpha=0.0, T_ref: float = 293.15):
        self.E: Table = as_table(E, "E")
        self.nu: Table = as_table(nu, "nu")
        self.alpha: Table = as_table(alpha, "alpha")
        self.T_ref = float(T_ref)
        self.E.check(0.0, None, what="positive (Young's modulus must be > 0)")
        self.nu.check(-1.0, 0.5, what="in (-1, 0.5) (Poisson ratio)")
        if not np.isfinite(self.T_ref):
            raise MaterialError(f"T_ref must be finite, got {T_ref}")

    def initial_state(self, n: int) -> np.ndarray:
        """No internal variables: (n, 0)."""
        return np.zeros((n, 0))

    def stiffness(self, temperature: np.ndarray) -> np.ndarray:
        """Voigt stiffness D(T) (..., 6, 6) [Pa]."""
        return isotropic_stiffness(self.E(temperature), self.nu(temperature))

    def thermal_strain(self, temperature: np.ndarray) -> np.ndarray:
        """Thermal strain (..., 6): alpha(T) (T - T_ref) on the normal components."""
        T = np.asarray(temperature, dtype=float)
        return (self.alpha(T) * (T - self.T_ref))[..., None] * _ONE

    def integrate(self, strain_old: np.ndarray, strain_new: np.ndarray, state_old: np.ndarray,
                  temperature: np.ndarray, dt: float, *, split_tangent: bool = False):
        """Stress, (empty) state and tangent at the end of the step.

        Parameters
        ----------
        strain_old, strain_new : (n, 6) total strains (engineering shears) [-]
        state_old : (n, 0)
        temperature : (n,) temperature at the end of the step [K]
        dt : time step [s] (unused)
        split_tangent : return the tangent as an :class:`IsotropicTangent`
            (``alpha = lambda``, ``beta = 2 G``)

        Returns
        -------
        stress (n, 6) [Pa], state_new (n, 0), tangent (n, 6, 6) [Pa]
        """
        E, nu = np.broadcast_arrays(self.E(temperature), self.nu(temperature))
        D = isotropic_stiffness(E, nu)
        eps = np.asarray(strain_new, float) - self.thermal_strain(temperature)
        stress = np.einsum("...ij,...j->...i", D, eps)
        state = np.asarray(state_old, float).reshape(stress.shape[:-1] + (0,))
        if split_tangent:
            lam, G = _lame(E, nu)
            return stress, state, IsotropicTangent(lam, 2 * G, None, None)
        return stress, state, D

"""Voigt / Mandel conventions for symmetric 3x3 tensors at integration points.

Convention used by every material law and by the FE kernels (``rom.fom``):

- component order ``(xx, yy, zz, xy, yz, xz)`` (:data:`VOIGT_PAIRS`);
- **stress** in Voigt form ``(s_xx, s_yy, s_zz, s_xy, s_yz, s_xz)`` [Pa];
- **strain** in Voigt form with *engineering* shears
  ``(e_xx, e_yy, e_zz, 2 e_xy, 2 e_yz, 2 e_xz)`` [-], so that the work density is
  ``stress @ strain`` and the tangent ``D = d stress / d strain`` (6 x 6, Pa) is the
  usual Voigt stiffness used as ``B^T D B``.

Internally the return mapping works in Mandel form (orthonormal: shears times
sqrt(2) for both stress and strain), converted here.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = [
    "I_DEV",
    "IsotropicTangent",
    "MANDEL",
    "VOIGT_PAIRS",
    "mandel_to_strain",
    "mandel_to_stress",
    "strain_to_mandel",
    "stress_to_mandel",
    "tangent_from_mandel",
    "to_matrix",
    "von_mises",
]

VOIGT_PAIRS = ((0, 0), (1, 1), (2, 2), (0, 1), (1, 2), (0, 2))
_S2 = np.sqrt(2.0)
MANDEL = np.array([1.0, 1.0, 1.0, _S2, _S2, _S2])
_EPS_TO_M = np.array([1.0, 1.0, 1.0, 1 / _S2, 1 / _S2, 1 / _S2])  # engineering -> Mandel
_ONE = np.array([1.0, 1.0, 1.0, 0.0, 0.0, 0.0])
#: deviatoric projector in Mandel form (6, 6)
I_DEV = np.eye(6) - np.outer(_ONE, _ONE) / 3.0


def strain_to_mandel(e: np.ndarray) -> np.ndarray:
    """Voigt strain (engineering shears) (..., 6) -> Mandel (..., 6)."""
    return e * _EPS_TO_M


def mandel_to_strain(m: np.ndarray) -> np.ndarray:
    """Mandel (..., 6) -> Voigt strain with engineering shears (..., 6)."""
    return m / _EPS_TO_M


def stress_to_mandel(s: np.ndarray) -> np.ndarray:
    """Voigt stress (..., 6) -> Mandel (..., 6)."""
    return s * MANDEL


def mandel_to_stress(m: np.ndarray) -> np.ndarray:
    """Mandel (..., 6) -> Voigt stress (..., 6)."""
    return m / MANDEL


def tangent_from_mandel(dm: np.ndarray) -> np.ndarray:
    """Mandel tangent d sigma_M / d eps_M (..., 6, 6) -> Voigt d sigma / d eps_eng."""
    return dm * _EPS_TO_M[:, None] * _EPS_TO_M[None, :]


def von_mises(stress: np.ndarray) -> np.ndarray:
    """Von Mises equivalent stress (...,) of Voigt stresses (..., 6) [Pa]."""
    m = stress_to_mandel(stress)
    s = m - (m[..., :3].sum(-1) / 3.0)[..., None] * _ONE
    return np.sqrt(1.5 * np.einsum("...i,...i->...", s, s))


def to_matrix(v: np.ndarray, *, strain: bool = False) -> np.ndarray:
    """Voigt vectors (..., 6) -> symmetric matrices (..., 3, 3) (halving shears if ``strain``)."""
    v = np.asarray(v, dtype=float)
    shear = 0.5 if strain else 1.0
    out = np.empty(v.shape[:-1] + (3, 3))
    for k, (i, j) in enumerate(VOIGT_PAIRS):  # 6 components, not points
        val = v[..., k] * (shear if i != j else 1.0)
        out[..., i, j] = val
        out[..., j, i] = val
    return out


#: Voigt image of the Mandel identity, diag(1, 1, 1, 1/2, 1/2, 1/2) (engineering shears)
_S_VOIGT = _EPS_TO_M**2


@dataclass(frozen=True)
class IsotropicTangent:
    """A Voigt tangent of the form ``D = alpha 1 1^T + beta S + gamma m m^T`` at every point.

    ``1 = (1, 1, 1, 0, 0, 0)``, ``S = diag(1, 1, 1, 1/2, 1/2, 1/2)`` (the Mandel identity
    seen from engineering shears), ``m`` (..., 6) a direction (the Voigt image of the
    Mandel flow direction; ``None`` where ``gamma`` is zero everywhere). Isotropic
    elasticity is ``alpha = lambda, beta = 2 G``; the radial-return tangent of a von Mises
    law adds the flow-direction term. Kept in this form, the reduced tangent
    ``sum_g w_g E_g^T D_g E_g`` is one symmetric rank-k product and two thin products
    instead of a 6 x 6 product per point (:func:`rom.online.solve.reduced_step`).
    """

    alpha: np.ndarray             # (...,) [Pa]
    beta: np.ndarray              # (...,) [Pa]
    gamma: np.ndarray | None      # (...,) [Pa] or None
    m: np.ndarray | None          # (..., 6) [-] or None

    def full(self) -> np.ndarray:
        """The (..., 6, 6) Voigt matrices."""
        a = np.asarray(self.alpha, float)
        D = a[..., None, None] * np.outer(_ONE, _ONE) + \
            np.asarray(self.beta, float)[..., None, None] * np.diag(_S_VOIGT)
        if self.gamma is not None:
            D = D + self.gamma[..., None, None] * (self.m[..., :, None] * self.m[..., None, :])
        return D

"""Analytical parametric field families.

They stand in for a high-fidelity solver when building and testing the offline
pipeline on a real mesh: every snapshot is a closed-form field evaluated at the
mesh nodes, so the whole chain (store, POD, artifacts) can be checked exactly.

``goodier_hotspot``
    Displacement u = grad(phi) of Goodier's thermoelastic potential for a
    moving Gaussian hot spot, ramped in time:

        phi(x, t) = -A s(t) w^2 exp(-|x - c(t)|^2 / (2 w^2)),
        u(x, t)   = A s(t) (x - c(t)) exp(-|x - c(t)|^2 / (2 w^2)),
        s(t) = t / t_end,  c(t) = (x0 + v t, y0, 0).

    In an infinite isotropic body u = grad(phi) is the particular solution of
    thermo-elasticity for the temperature rise
    T = (1 - nu) / ((1 + nu) alpha) * laplacian(phi) (Goodier 1937); here it is
    used as a smooth, nonlinearly parametrized family whose POD spectrum decays
    neither too fast nor too slowly. Parameters (SI): amplitude A (-), width
    w (m), x0, y0 (m), speed v (m/s).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.stats import qmc

__all__ = ["FAMILIES", "GoodierHotspot", "sample_parameters"]


@dataclass(frozen=True)
class GoodierHotspot:
    """The ``goodier_hotspot`` family (see the module docstring)."""

    defaults = {"amplitude": 1e-3, "width": 0.01, "x0": -0.03, "y0": 0.0, "speed": 0.03}
    field_name = "displacement"
    n_components = 3
    units = "m"

    @staticmethod
    def displacement(points: np.ndarray, t: float, t_end: float, mu: dict[str, float]) -> np.ndarray:
        """Displacement (n_points, 3) in m at time t for parameters mu."""
        p = {**GoodierHotspot.defaults, **mu}
        c = np.array([p["x0"] + p["speed"] * t, p["y0"], 0.0])
        d = np.asarray(points, dtype=float)[:, :3] - c
        g = np.exp(-np.einsum("ij,ij->i", d, d) / (2.0 * p["width"] ** 2))
        return (p["amplitude"] * (t / t_end)) * d * g[:, None]


FAMILIES = {"goodier_hotspot": GoodierHotspot}


def sample_parameters(ranges: dict[str, tuple[float, float]], n: int, seed: int
                      ) -> list[dict[str, float]]:
    """``n`` parameter points filling the box ``ranges`` (scrambled Halton sequence, seeded)."""
    names = sorted(ranges)
    if not names:
        return [{} for _ in range(n)]
    lo = np.array([ranges[k][0] for k in names])
    hi = np.array([ranges[k][1] for k in names])
    u = qmc.Halton(d=len(names), scramble=True, seed=seed).random(n)
    x = lo + u * (hi - lo)
    return [{k: float(v) for k, v in zip(names, row)} for row in x]

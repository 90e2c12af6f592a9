"""A synthetic parametric problem with distinct regimes, for tests, docs and benchmarks.

On ``x in [0, 1]`` (``n_points`` grid points), a hot spot heats one of ``n_regimes``
zones (centre ``c_r = (r + 1/2) / n_regimes``) with amplitude ``a`` (log-uniform in
``amplitude_range``), initial offset ``s0`` and a drift over the ``n_steps`` time steps
``tau = t / n_steps``:

- temperature (the loading) ``T(x, tau) = a tau g(xi)``, ``g(xi) = exp(-xi^2)``,
  ``xi = (x - c_r - d (s0 + tau / 2)) / w``, ``d = 0.3 / n_regimes``;
- response (the snapshot), creep-like and nonlinear in T:
  ``u(x, tau) = (a tau)^2 (g(xi)^2 + 0.3 tau xi g(xi))``.

Inside a regime the snapshots are scaled copies of a drifting shape (a few POD modes);
different regimes live in nearly orthogonal subspaces; amplitudes vary by ``~ (a_max /
a_min)^2``. Angle-based dissimilarities see the regimes, Euclidean distance mostly sees
the amplitude: the situation of Daniel et al. where the sine dissimilarity wins.
Features: the temperature at ``n_sensors`` equispaced points (cheap to get for a new
loading before any solve).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["SyntheticRegimes", "synthetic_regimes"]


@dataclass
class SyntheticRegimes:
    """Snapshots of :func:`synthetic_regimes` (full matrices, identical on every rank).

    Attributes
    ----------
    X : (n_points, m) snapshots, m = n_simulations * n_steps, simulation-major columns
    features : (m, n_sensors) temperature at the sensors for each snapshot
    simulation : (m,) simulation id of each column
    regime : (m,) regime of each column (the planted clusters)
    simulation_features : (n_simulations, n_sensors) sensor temperatures at the last step
    simulation_regime : (n_simulations,) regime of each simulation
    x : (n_points,) grid
    """

    X: np.ndarray
    features: np.ndarray
    simulation: np.ndarray
    regime: np.ndarray
    simulation_features: np.ndarray
    simulation_regime: np.ndarray
    x: np.ndarray


def synthetic_regimes(n_simulations: int = 60, n_steps: int = 5, *, n_points: int = 400,
                      n_regimes: int = 3, amplitude_range: tuple[float, float] = (0.3, 3.0),
                      n_sensors: int = 9, seed: int = 0,
                      rows: tuple[int, int] | None = None) -> SyntheticRegimes:
    """Generate the synthetic regimes problem (deterministic for a given seed).

    Simulation ``i`` is in regime ``i % n_regimes``; see the module docstring for the fields.
    ``rows=(lo, hi)`` generates only those grid rows of ``X`` and ``x`` (a rank's block, or a
    chunk of a large grid); everything else is unchanged.
    """
    if n_simulations < 1 or n_steps < 1 or n_points < 2 or n_regimes < 1 or n_sensors < 1:
        raise ValueError("synthetic_regimes: sizes must be positive (n_points >= 2)")
    lo, hi = amplitude_range
    if not 0 < lo <= hi:
        raise ValueError(f"amplitude_range must satisfy 0 < low <= high, got {amplitude_range}")
    rng = np.random.default_rng(seed)
    sim_regime = np.arange(n_simulations) % n_regimes
    amp = np.exp(rng.uniform(np.log(lo), np.log(hi), n_simulations))
    s0 = rng.uniform(-1.0, 1.0, n_simulations)
    width = (0.25 / n_regimes) * rng.uniform(0.8, 1.2, n_simulations)
    tau = np.arange(1, n_steps + 1) / n_steps
    # column j = (simulation j // n_steps, step j % n_steps)
    sim = np.repeat(np.arange(n_simulations), n_steps)
    t = np.tile(tau, n_simulations)
    centre = (sim_regime[sim] + 0.5) / n_regimes + (0.3 / n_regimes) * (s0[sim] + 0.5 * t)
    level = amp[sim] * t                                        # (m,)
    r0, r1 = (0, n_points) if rows is None else (int(rows[0]), int(rows[1]))
    if not 0 <= r0 <= r1 <= n_points:
        raise ValueError(f"rows {rows} out of range for {n_points} grid points")
    x = np.arange(r0, r1) / (n_points - 1)
    sensors = (np.arange(n_sensors) + 0.5) / n_sensors

    def shape(points):
        xi = (points[:, None] - centre[None, :]) / width[sim][None, :]
        return xi, np.exp(-xi**2)

    xi, g = shape(x)
    X = level**2 * (g**2 + 0.3 * t * xi * g)
    _, gs = shape(sensors)
    features = (level * gs).T                                   # (m, n_sensors)
    last = np.arange(n_simulations) * n_steps + n_steps - 1
    return SyntheticRegimes(X=X, features=features, simulation=sim, regime=sim_regime[sim],
                            simulation_features=features[last], simulation_regime=sim_regime,
                            x=x)

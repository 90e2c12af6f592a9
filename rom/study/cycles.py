"""What fatigue criteria read from a cyclic answer at one point: per load cycle the stress
range and mean stress along a fixed direction, the increment of p, and the cycle's
hysteresis loop (docs/study.md, "Cycles").

The direction ``n`` is the principal direction of the largest principal stress (in
absolute value) over the whole history at the point; the cycle's stress is
``sigma_nn(t) = n . sigma(t) n`` and its strain ``eps_nn(t) = n . eps(t) n`` of the strain
given (the study gives the mechanical strain: total minus thermal). Range
``max - min`` and mean ``(max + min) / 2`` over the steps of the cycle, its two ends
included.
"""
from __future__ import annotations

import itertools

import numpy as np

from ..materials.tensors import to_matrix

__all__ = ["cycle_steps", "cycle_table", "principal_direction"]


def cycle_steps(times: np.ndarray, period: float) -> list[tuple[int, int]]:
    """``(i0, i1)`` step indices of each complete cycle: ``times[i0] = k period`` and
    ``times[i1] = (k + 1) period`` (to 1e-9 period), in order."""
    t = np.asarray(times, float)
    k = t / period
    ends = np.flatnonzero(np.abs(k - np.round(k)) <= 1e-9)
    return [(int(a), int(b)) for a, b in itertools.pairwise(ends)
            if round(k[b]) - round(k[a]) == 1]


def principal_direction(stress: np.ndarray) -> np.ndarray:
    """(3,) unit principal direction of the largest |principal stress| of the Voigt
    stresses ``stress`` (m, 6) over the history."""
    w, v = np.linalg.eigh(to_matrix(np.asarray(stress, float)))       # (m, 3), (m, 3, 3)
    i, j = np.unravel_index(np.argmax(np.abs(w)), w.shape)
    return v[i, :, j]


def cycle_table(times: np.ndarray, period: float, stress: np.ndarray, strain: np.ndarray,
                p: np.ndarray, n: np.ndarray | None = None) -> list[dict]:
    """Per complete cycle: ``cycle`` (1, 2, ...), ``stress_range``, ``mean_stress`` [Pa],
    ``dp`` (increment of p), and the loop ``strain_nn``, ``stress_nn`` (the cycle's steps)
    of the histories ``stress``, ``strain`` (m, 6) (Voigt, engineering shears) and ``p``
    (m,) at the times ``times`` (m,); ``n`` the direction (default
    :func:`principal_direction` of ``stress``)."""
    stress, strain, p = (np.asarray(a, float) for a in (stress, strain, p))
    n = principal_direction(stress) if n is None else np.asarray(n, float)
    s_nn = np.einsum("i,mij,j->m", n, to_matrix(stress), n)
    e_nn = np.einsum("i,mij,j->m", n, to_matrix(strain, strain=True), n)
    out = []
    for c, (i0, i1) in enumerate(cycle_steps(times, period), start=1):   # the cycles
        s = s_nn[i0:i1 + 1]
        out.append({"cycle": c, "stress_range": float(s.max() - s.min()),
                    "mean_stress": float(0.5 * (s.max() + s.min())),
                    "dp": float(p[i1] - p[i0]), "strain_nn": e_nn[i0:i1 + 1],
                    "stress_nn": s})
    return out

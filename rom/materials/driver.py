"""Material-point driver: mixed strain/stress control of one point over a time history.

Used by the tests (uniaxial creep and relaxation) and handy to calibrate a law.
"""
from __future__ import annotations

import numpy as np

from .base import Material, MaterialError

__all__ = ["drive_point"]


def drive_point(material: Material, times: np.ndarray, *, strain: dict[int, np.ndarray] | None = None,
                stress: dict[int, np.ndarray] | None = None, temperature=None,
                tol: float = 1e-10, max_iter: int = 25):
    """Drive one material point: each Voigt component has either its strain or its stress imposed.

    Parameters
    ----------
    material : a law with the :class:`~rom.materials.base.Material` interface
    times : (m,) increasing times [s], ``times[0]`` is the initial (virgin) state
    strain : component -> (m,) imposed strain history (engineering shears)
    stress : component -> (m,) imposed stress history [Pa]; components given in
        neither dict have zero stress imposed
    temperature : (m,) temperatures [K] or a scalar (default: the law's ``T_ref``)
    tol : tolerance on the stress residual, relative to max(|stress|, 1 Pa)

    Returns
    -------
    strains (m, 6), stresses (m, 6) [Pa], states (m, n_state)
    """
    times = np.asarray(times, float)
    m = len(times)
    strain = {k: np.broadcast_to(np.asarray(v, float), (m,)) for k, v in (strain or {}).items()}
    stress = {k: np.broadcast_to(np.asarray(v, float), (m,)) for k, v in (stress or {}).items()}
    free = [k for k in range(6) if k not in strain]
    for k in free:
        stress.setdefault(k, np.zeros(m))
    T = np.broadcast_to(np.asarray(getattr(material, "T_ref", 293.15) if temperature is None
                                   else temperature, float), (m,))
    eps = np.zeros((m, 6))
    sig = np.zeros((m, 6))
    st = np.zeros((m, material.n_state))
    st[0] = material.initial_state(1)[0]
    for i in range(1, m):
        e = eps[i - 1].copy()
        for k, v in strain.items():
            e[k] = v[i]
        for it in range(max_iter):
            s, snew, D = material.integrate(eps[i - 1][None], e[None], st[i - 1][None],
                                            T[i:i + 1], times[i] - times[i - 1])
            r = np.array([s[0, k] - stress[k][i] for k in free])
            scale = max(np.abs(s[0]).max(), 1.0)
            if not free or np.abs(r).max() <= tol * scale:
                break
            e[free] -= np.linalg.solve(D[0][np.ix_(free, free)], r)
        else:
            raise MaterialError(f"drive_point: no convergence at step {i} (t = {times[i]:g} s)")
        eps[i], sig[i], st[i] = e, s[0], snew[0]
    return eps, sig, st

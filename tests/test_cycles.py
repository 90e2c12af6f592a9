"""Per-cycle quantities at a point (rom.study.cycles): the cycles of a time grid, and the
stress range, mean stress and p increment of a uniaxial Chaboche history, whatever the
orientation of the axes."""
from __future__ import annotations

import numpy as np
from scipy.spatial.transform import Rotation

from rom.materials import Chaboche, drive_point
from rom.materials.tensors import to_matrix
from rom.study.cycles import cycle_steps, cycle_table, principal_direction

LAW = Chaboche(E=200e9, nu=0.3, K=600e6, n=6.0, sigma_y=150e6, Q=40e6, b=10.0,
               C1=90e9, D1=1000.0, C2=8e9, D2=100.0)


def test_cycle_steps_are_the_complete_periods():
    times = np.linspace(0.0, 50.0, 26)                     # 2.5 cycles of 20 s
    assert cycle_steps(times, 20.0) == [(0, 10), (10, 20)]
    assert cycle_steps(np.linspace(20.0, 60.0, 9), 20.0) == [(0, 4), (4, 8)]
    assert cycle_steps(np.array([0.0, 7.0, 13.0]), 20.0) == []


def _rotate(voigt, R, strain=False):
    """Voigt tensors (m, 6) in axes rotated by R."""
    M = np.einsum("ij,mjk,lk->mil", R, to_matrix(voigt, strain=strain), R)
    pairs = ((0, 0), (1, 1), (2, 2), (0, 1), (1, 2), (0, 2))
    return np.stack([M[:, i, j] * (2.0 if strain and i != j else 1.0) for i, j in pairs], 1)


def test_uniaxial_cycles_in_any_axes():
    """Strain cycles with a tensile mean (the mean stress relaxes, p grows each cycle):
    the table equals max - min, mean and p increments of sigma_xx read directly; the same
    history seen in rotated axes gives the same table."""
    period, cycles, per = 40.0, 4, 40
    times = np.linspace(0.0, cycles * period, cycles * per + 1)
    strain = 3e-3 + 6e-3 * np.sin(2 * np.pi * times / period)
    strain[0] = 0.0
    eps, sig, st = drive_point(LAW, times, strain={0: strain})
    table = cycle_table(times, period, sig, eps, st[:, 6])
    assert [c["cycle"] for c in table] == [1, 2, 3, 4]
    for c, (i0, i1) in zip(table, cycle_steps(times, period), strict=True):
        s = sig[i0:i1 + 1, 0]
        assert np.isclose(c["stress_range"], s.max() - s.min(), rtol=1e-12)
        assert np.isclose(c["mean_stress"], 0.5 * (s.max() + s.min()), rtol=1e-12)
        assert np.isclose(c["dp"], st[i1, 6] - st[i0, 6], rtol=1e-12) and c["dp"] > 0
        assert np.allclose(c["strain_nn"], eps[i0:i1 + 1, 0], rtol=1e-12)
    means = [c["mean_stress"] for c in table]
    assert means[0] > 0 and means[-1] < 0.5 * means[0]       # mean-stress relaxation
    R = Rotation.from_euler("xyz", [0.3, -0.7, 1.1]).as_matrix()
    rot = cycle_table(times, period, _rotate(sig, R), _rotate(eps, R, strain=True), st[:, 6])
    n = principal_direction(_rotate(sig, R))
    assert abs(abs(n @ R[:, 0]) - 1.0) < 1e-12
    for a, b in zip(table, rot, strict=True):
        assert np.isclose(a["stress_range"], b["stress_range"], rtol=1e-10)
        assert np.isclose(a["mean_stress"], b["mean_stress"], rtol=1e-9)

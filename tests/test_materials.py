"""Material laws: tangents by finite differences, Norton creep and relaxation against closed forms."""
from __future__ import annotations

import numpy as np
import pytest

from rom.materials import (
    MaterialError,
    Norton,
    Table,
    ThermoElastic,
    drive_point,
    make_material,
    von_mises,
)
from rom.materials.tensors import to_matrix

E0, NU, K0, N0 = 200e9, 0.3, 400e6, 5.0


def _fd_tangent(law, e0, e1, st, T, dt, h=1e-8):
    D = np.empty(e1.shape + (6,))
    for k in range(6):
        ep, em = e1.copy(), e1.copy()
        ep[:, k] += h
        em[:, k] -= h
        D[:, :, k] = (law.integrate(e0, ep, st, T, dt)[0] - law.integrate(e0, em, st, T, dt)[0]) / (2 * h)
    return D


def _tables():
    return {"E": Table([300.0, 1200.0], [210e9, 150e9]), "nu": Table([300.0, 1200.0], [0.29, 0.33]),
                "alpha": Table([300.0, 1200.0], [1.2e-5, 1.6e-5]), "T_ref": 293.15}


def test_table_piecewise_linear_and_constant_outside():
    t = Table([300.0, 500.0, 900.0], [1.0, 3.0, 2.0])
    assert np.allclose(t([200.0, 300.0, 400.0, 700.0, 1000.0]), [1.0, 1.0, 2.0, 2.5, 2.0])
    assert np.allclose(t.derivative([400.0, 700.0, 1000.0]), [0.01, -0.0025, 0.0])


def test_elastic_stress_and_tangent(rng):
    law = ThermoElastic(**_tables())
    n = 5
    T = rng.uniform(300, 1200, n)
    e1 = rng.normal(size=(n, 6)) * 1e-3
    s, st, D = law.integrate(np.zeros((n, 6)), e1, law.initial_state(n), T, 1.0)
    assert st.shape == (n, 0)
    E, nu, a = law.E(T), law.nu(T), law.alpha(T)
    # independent formula with full tensors: sigma = lam tr(eps_e) I + 2 mu eps_e
    eps = to_matrix(e1, strain=True) - (a * (T - 293.15))[:, None, None] * np.eye(3)
    lam, mu = E * nu / ((1 + nu) * (1 - 2 * nu)), E / (2 * (1 + nu))
    sig = lam[:, None, None] * np.trace(eps, axis1=1, axis2=2)[:, None, None] * np.eye(3) + \
        2 * mu[:, None, None] * eps
    assert np.allclose(to_matrix(s), sig, rtol=1e-13, atol=1e-6)
    Dfd = _fd_tangent(law, np.zeros((n, 6)), e1, law.initial_state(n), T, 1.0)
    assert np.abs(D - Dfd).max() <= 1e-7 * np.abs(D).max()
    # free thermal expansion: zero stress
    s0, _, _ = law.integrate(np.zeros((n, 6)), law.thermal_strain(T), law.initial_state(n), T, 1.0)
    assert np.abs(s0).max() < 1e-12 * E.max()


@pytest.mark.parametrize("dt", [1e-3, 1.0, 1e3])
def test_norton_consistent_tangent_fd(rng, dt):
    law = Norton(**_tables(), K=Table([300.0, 1200.0], [600e6, 200e6]), n=Table([300.0, 1200.0], [4.0, 7.0]))
    n = 8
    T = rng.uniform(300, 1200, n)
    e0 = rng.normal(size=(n, 6)) * 1e-3
    e1 = e0 + rng.normal(size=(n, 6)) * 2e-3
    st = law.initial_state(n)
    st[:, :6] = rng.normal(size=(n, 6)) * 1e-4
    st[:, :3] -= st[:, :3].mean(axis=1, keepdims=True)     # deviatoric viscoplastic strain
    s, sn, D = law.integrate(e0, e1, st, T, dt)
    Dfd = _fd_tangent(law, e0, e1, st, T, dt)
    assert np.abs(D - Dfd).max() <= 1e-6 * np.abs(D).max()
    assert np.allclose(D, np.swapaxes(D, 1, 2), rtol=1e-12, atol=1e-12 * np.abs(D).max())
    # backward-Euler consistency: dp = dt (sigma_eq / K)^n at the end of the step
    dp = sn[:, 6] - st[:, 6]
    assert np.allclose(dp, dt * (von_mises(s) / law.K(T)) ** law.n(T), rtol=1e-10)
    assert np.all(dp > 0)
    # viscoplastic strain is deviatoric and its equivalent increment is dp
    devp = sn[:, :6] - st[:, :6]
    assert np.abs(devp[:, :3].sum(axis=1)).max() < 1e-14
    m = to_matrix(devp, strain=True)
    assert np.allclose(np.sqrt(2 / 3 * np.einsum("nij,nij->n", m, m)), dp, rtol=1e-10)


def test_norton_work_gives_the_same_answer_over_iterations_and_steps(rng):
    """``work`` (the reduced Newton's scratch): the same stress, state and tangent as a call
    without it, while the strain moves within a step (cached properties, warm local
    Newton) and when the next step brings another state_old (properties recomputed even
    with the same temperature array)."""
    law = Norton(**_tables(), K=Table([300.0, 1200.0], [600e6, 200e6]),
                 n=Table([300.0, 1200.0], [4.0, 7.0]))
    n = 50
    T = rng.uniform(300, 1200, n)
    e0 = rng.normal(size=(n, 6)) * 1e-3
    st = law.initial_state(n)
    work: dict = {}
    for step in range(3):  # loop over steps: same T array, new state_old each time
        e1 = e0 + rng.normal(size=(n, 6)) * 2e-3
        for k in range(3):  # loop over "Newton iterations": the strain moves a little
            e = e1 * (1 + 1e-3 * k)
            got = law.integrate(e0, e, st, T, 100.0, work=work)
            ref = law.integrate(e0, e, st, T, 100.0)
            for a, b in zip(got, ref):
                np.testing.assert_allclose(a, b, rtol=1e-11, atol=1e-11 * np.abs(b).max())
            assert work["props"][1] is st and work["x"].shape == (n,)
        e0, st = e, got[1]


def test_norton_dt_zero_is_elastic(rng):
    law = Norton(E0, NU, K=K0, n=N0)
    el = ThermoElastic(E0, NU)
    e1 = rng.normal(size=(3, 6)) * 1e-3
    s, sn, D = law.integrate(np.zeros((3, 6)), e1, law.initial_state(3), np.full(3, 293.15), 0.0)
    s2, _, D2 = el.integrate(np.zeros((3, 6)), e1, el.initial_state(3), np.full(3, 293.15), 0.0)
    assert np.allclose(s, s2, rtol=1e-14) and np.allclose(D, D2) and not sn.any()


def test_uniaxial_creep_matches_analytical():
    """Constant stress sigma0: eps_xx(t) = sigma0/E + alpha dT + (sigma0/K)^n t."""
    T = 900.0
    law = Norton(**_tables(), K=K0, n=N0)
    sigma0 = 150e6
    times = np.concatenate([[0.0], np.linspace(0.0, 3600.0, 61)])   # first step dt=0: loading
    eps, sig, st = drive_point(law, times, stress={0: np.full(len(times), sigma0)}, temperature=T)
    E, nu, a = law.E(T), law.nu(T), law.alpha(T)
    rate = (sigma0 / K0) ** N0
    exact_xx = sigma0 / E + a * (T - 293.15) + rate * times
    exact_yy = -nu * sigma0 / E + a * (T - 293.15) - 0.5 * rate * times
    assert np.abs(sig[1:, 1:]).max() < 1e-6 * sigma0
    creep = eps[1:, 0] - eps[1, 0]
    assert np.max(np.abs(creep - (exact_xx[1:] - exact_xx[1]))) <= 5e-3 * abs(rate * 3600)
    assert np.allclose(eps[1:, 0], exact_xx[1:], rtol=5e-3)
    assert np.allclose(eps[1:, 1], exact_yy[1:], rtol=5e-3)
    assert np.allclose(st[1:, 6], rate * times[1:], rtol=1e-8, atol=1e-15)


def test_uniaxial_relaxation_matches_closed_form():
    """Fixed eps_xx: sigma(t) = [sigma0^(1-n) + (n-1) E t / K^n]^(1/(1-n))."""
    law = Norton(E0, NU, K=K0, n=N0)
    eps0 = 1.5e-3
    t_end = 1e4
    times = np.concatenate([[0.0, 0.0], np.geomspace(1e-6, t_end, 800)])
    _eps, sig, _st = drive_point(law, times, strain={0: np.full(len(times), eps0)})
    sigma0 = E0 * eps0
    exact = (sigma0 ** (1 - N0) + (N0 - 1) * E0 * times / K0**N0) ** (1 / (1 - N0))
    assert abs(sig[1, 0] - sigma0) < 1e-9 * sigma0
    assert exact[-1] < 0.3 * sigma0                         # a real relaxation
    assert np.max(np.abs(sig[2:, 0] - exact[2:]) / exact[2:]) < 5e-3
    assert np.abs(sig[1:, 1:]).max() < 1e-6 * sigma0


def test_bad_material_data_errors():
    with pytest.raises(MaterialError, match=r"E: value -2e\+09 .* positive"):
        ThermoElastic(E=-2e9, nu=0.3)
    with pytest.raises(MaterialError, match="nu: value 0.5"):
        ThermoElastic(E=1e9, nu=Table([0.0, 1.0], [0.3, 0.5]))
    with pytest.raises(MaterialError, match="strictly increasing"):
        Table([1.0, 1.0], [2.0, 3.0], "E")
    with pytest.raises(MaterialError, match="Norton exponent"):
        Norton(E0, NU, K=K0, n=0.5)
    with pytest.raises(MaterialError, match="unknown material law 'plastic'"):
        make_material("plastic", E=1.0, nu=0.0)


def test_vectorized_over_extra_dimensions(rng):
    """(elements, points, 6) arrays give the same results as flattened ones."""
    law = Norton(E0, NU, K=K0, n=N0)
    e = rng.normal(size=(3, 4, 6)) * 2e-3
    st = np.zeros((3, 4, 7))
    T = np.full((3, 4), 500.0)
    s, _sn, D = law.integrate(np.zeros_like(e), e, st, T, 5.0)
    s2, _sn2, D2 = law.integrate(np.zeros((12, 6)), e.reshape(12, 6), st.reshape(12, 7), T.ravel(), 5.0)
    assert np.array_equal(s.reshape(12, 6), s2) and np.array_equal(D.reshape(12, 6, 6), D2)

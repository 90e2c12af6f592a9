"""Chaboche law at material points: the Norton limit, the consistent tangent by finite
differences, and uniaxial cycles, ratcheting and relaxation against an independent
integration of the uniaxial equations (scipy's Radau, tight tolerances)."""
from __future__ import annotations

import itertools

import numpy as np
import pytest
from scipy.integrate import solve_ivp
from test_materials import _fd_tangent

from rom.materials import Chaboche, MaterialError, Norton, Table, drive_point, make_material

T_REF = 293.15
#: superalloy-like tables (Pa, K): softer, less viscous and less hardening when hotter
PARAMS = {
    "E": Table([300.0, 1300.0], [210e9, 140e9]), "nu": Table([300.0, 1300.0], [0.29, 0.33]),
    "alpha": Table([300.0, 1300.0], [1.2e-5, 1.7e-5]), "T_ref": T_REF,
    "K": Table([300.0, 1300.0], [1500e6, 600e6]), "n": Table([300.0, 1300.0], [12.0, 6.0]),
    "sigma_y": Table([300.0, 1300.0], [600e6, 150e6]), "Q": Table([300.0, 1300.0], [-60e6, 40e6]),
    "b": 15.0, "C1": Table([300.0, 1300.0], [180e9, 90e9]), "D1": 1500.0,
    "C2": Table([300.0, 1300.0], [15e9, 8e9]), "D2": 120.0,
}


def _random_states(law, n, rng):
    """States with viscoplastic strain, p and deviatoric back stresses (not parallel)."""
    z = law.initial_state(n)
    z[:, :6] = rng.normal(size=(n, 6)) * 1e-4
    z[:, 6] = rng.random(n) * 1e-2
    for sl in (slice(7, 13), slice(13, 19)):
        X = rng.normal(size=(n, 6)) * 4e7
        X[:, :3] -= X[:, :3].mean(1, keepdims=True)
        z[:, sl] = X
    return z


@pytest.mark.parametrize("dt", [0.0, 1e-3, 1.0, 300.0])
def test_norton_limit(rng, dt):
    """sigma_y = Q = C1 = C2 = 0: the Norton answers (stress, state, tangent) to 1e-10."""
    el = {k: PARAMS[k] for k in ("E", "nu", "alpha", "T_ref")}
    norton = Norton(**el, K=PARAMS["K"], n=PARAMS["n"])
    law = Chaboche(**el, K=PARAMS["K"], n=PARAMS["n"], D1=500.0, D2=20.0, b=3.0)
    n = 64
    e0 = rng.normal(size=(n, 6)) * 2e-3
    e1 = e0 + rng.normal(size=(n, 6)) * 2e-3
    z = law.initial_state(n)
    z[:, :7] = _random_states(law, n, rng)[:, :7]
    T = rng.uniform(400.0, 1200.0, n)
    s1, z1, D1 = norton.integrate(e0, e1, z[:, :7], T, dt)
    s2, z2, D2 = law.integrate(e0, e1, z, T, dt)
    assert np.abs(s2 - s1).max() <= 1e-10 * np.abs(s1).max()
    assert np.abs(z2[:, :7] - z1).max() <= 1e-10 * np.abs(z1).max()
    assert np.all(z2[:, 7:] == 0.0)
    assert np.abs(D2 - D1).max() <= 1e-10 * np.abs(D1).max()


@pytest.mark.parametrize("dt", [1e-2, 1.0, 100.0])
def test_consistent_tangent_fd(rng, dt):
    """The (non-symmetric) consistent tangent equals centred differences of the stress to
    1e-6, at flowing points with recovering back stresses and at elastic points."""
    law = Chaboche(**PARAMS)
    n = 80
    z = _random_states(law, n, rng)
    e0 = rng.normal(size=(n, 6)) * 1e-3
    e1 = e0 + rng.normal(size=(n, 6)) * 4e-3 * (rng.random(n) > 0.2)[:, None]
    T = rng.uniform(400.0, 1200.0, n)
    _, z1, D = law.integrate(e0, e1, z, T, dt)
    flows = z1[:, 6] > z[:, 6]
    assert 10 < flows.sum() < n                     # both kinds of points
    Dn = _fd_tangent(law, e0, e1, z, T, dt)
    scale = np.abs(D).max(axis=(1, 2))[:, None, None]
    assert np.max(np.abs(D - Dn) / scale) < 1e-6
    asym = np.abs(D - D.transpose(0, 2, 1)).max(axis=(1, 2)) / scale[:, 0, 0]
    assert asym[flows].max() > 1e-3 and asym[~flows].max() < 1e-14


def _uniaxial_reference(law, times, T, *, strain=None, stress=None):
    """Uniaxial stress state, the back stresses X_i = x_i diag(2/3, -1/3, -1/3):
    dp/dt = <(|sigma - x| - R - sigma_y) / K>^n, d eps_vp/dt = dp/dt sign(sigma - x),
    dx_i/dt = C_i d eps_vp/dt - D_i dp/dt x_i; sigma = E (eps - eps_th - eps_vp) under
    strain control. Radau at rtol 1e-10. Returns sigma(t), eps(t), p(t)."""
    E, K, n, sy, Q, b = (float(getattr(law, k)(T)) for k in ("E", "K", "n", "sigma_y", "Q", "b"))
    C = [float(law.C1(T)), float(law.C2(T))]
    D = [float(law.D1(T)), float(law.D2(T))]
    eth = float(law.alpha(T)) * (T - law.T_ref)
    ts = np.asarray(times, float)

    def sig_of(t, y):
        if strain is not None:
            return E * (np.interp(t, ts, strain) - eth - y[0])
        return np.interp(t, ts, stress)

    def rhs(t, y):                     # (Radau's trial steps may overflow: inf is rejected)
        _, p, x1, x2 = y
        s = sig_of(t, y)
        f = abs(s - x1 - x2) - Q * (1 - np.exp(-b * min(p, 1.0))) - sy
        pd = min(max(f, 0.0) / K, 1e3) ** n
        ed = pd * np.sign(s - x1 - x2)
        return [ed, pd, C[0] * ed - D[0] * pd * x1, C[1] * ed - D[1] * pd * x2]

    kinks = np.flatnonzero(np.abs(np.diff(np.sign(np.diff(strain if strain is not None
                                                          else stress)))) > 0) + 1
    y = np.zeros(4)
    out = [y]
    edges = np.unique(np.concatenate([[0], kinks, [len(ts) - 1]]))
    for i0, i1 in itertools.pairwise(edges):   # piecewise-linear loading: pieces apart
        sol = solve_ivp(rhs, (ts[i0], ts[i1]), y, method="Radau", t_eval=ts[i0 + 1:i1 + 1],
                        rtol=1e-10, atol=[1e-14, 1e-14, 1e-2, 1e-2])
        assert sol.success, sol.message
        out.extend(sol.y.T)
        y = sol.y[:, -1]
    Y = np.array(out)
    sig = np.array([sig_of(t, y) for t, y in zip(ts, Y)])
    eps = (np.asarray(strain, float) if strain is not None else sig / E + eth + Y[:, 0])
    return sig, eps, Y[:, 1]


@pytest.mark.parametrize("T", [500.0, 900.0, 1200.0])
def test_uniaxial_strain_cycles_match_ode(T):
    """Three strain-controlled cycles (+-0.8 %, 1e-3 /s): stress within 0.5 % of the
    stress amplitude of the independent integration at every time, p within 2 % (backward
    Euler is first order: 150 steps per quarter cycle)."""
    law = Chaboche(**PARAMS)
    amp, rate, cycles, per_quarter = 8e-3, 1e-3, 3, 150
    quarter = amp / rate
    knots = np.array([0.0] + [amp, 0.0, -amp, 0.0] * cycles)
    tk = quarter * np.arange(len(knots))
    times = np.linspace(0.0, tk[-1], per_quarter * (len(knots) - 1) + 1)
    eth = float(law.alpha(T)) * (T - T_REF)
    strain = np.interp(times, tk, knots) + eth
    _, sig, st = drive_point(law, times, strain={0: strain}, temperature=T)
    ref_sig, _, ref_p = _uniaxial_reference(law, times, T, strain=strain)
    amplitude = 0.5 * (ref_sig.max() - ref_sig.min())
    print(f"\n{T:g} K: amplitude {amplitude / 1e6:.0f} MPa, stress error "
          f"{np.abs(sig[1:, 0] - ref_sig[1:]).max() / amplitude:.2%} of it, p error "
          f"{abs(st[-1, 6] - ref_p[-1]) / ref_p[-1]:.2%}")
    assert amplitude > 1.3 * float(law.sigma_y(T))             # a real hardening loop
    assert np.max(np.abs(sig[1:, 0] - ref_sig[1:])) < 5e-3 * amplitude
    assert abs(st[-1, 6] - ref_p[-1]) < 2e-2 * ref_p[-1]
    assert np.abs(sig[:, 1:]).max() < 1e-6 * amplitude


def test_stress_controlled_ratcheting_matches_ode():
    """Stress cycles with a mean stress: the strain ratchets (grows cycle after cycle) and
    follows the independent integration within 0.5 % of the strain range."""
    T = 1000.0
    law = Chaboche(**PARAMS)
    mean, amp, period, cycles, per = 200e6, 350e6, 20.0, 4, 100
    times = np.linspace(0.0, cycles * period, per * cycles + 1)
    stress = mean * np.minimum(times / 2.0, 1.0) + amp * np.sin(2 * np.pi * times / period)
    eps, _, st = drive_point(law, times, stress={0: stress}, temperature=T)
    _, ref_eps, ref_p = _uniaxial_reference(law, times, T, stress=stress)
    span = ref_eps[1:].max() - ref_eps[1:].min()       # (eps[0]: the virgin state, no eps_th)
    ends = np.arange(1, cycles + 1) * per
    print(f"\nratcheting: strain error {np.abs(eps[1:, 0] - ref_eps[1:]).max() / span:.3%} "
          "of the strain range")
    assert np.all(np.diff(ref_eps[ends]) > 5e-3 * span)              # ratcheting
    assert np.max(np.abs(eps[1:, 0] - ref_eps[1:])) < 5e-3 * span
    assert abs(st[-1, 6] - ref_p[-1]) < 1e-2 * ref_p[-1]


def test_relaxation_matches_ode():
    """A strain held after a ramp: the stress relaxes towards the yield surface, within
    0.5 % of the peak stress of the independent integration."""
    T = 1100.0
    law = Chaboche(**PARAMS)
    times = np.concatenate([np.linspace(0.0, 10.0, 201), 10.0 + np.geomspace(1e-3, 3600, 400)])
    strain = np.minimum(times / 10.0, 1.0) * 1e-2 + float(law.alpha(T)) * (T - T_REF)
    _, sig, _ = drive_point(law, times, strain={0: strain}, temperature=T)
    ref_sig, _, _ = _uniaxial_reference(law, times, T, strain=strain)
    assert ref_sig[-1] < 0.8 * ref_sig.max()                         # a real relaxation
    assert np.max(np.abs(sig[1:, 0] - ref_sig[1:])) < 5e-3 * ref_sig.max()


def test_dt_zero_and_below_yield_are_elastic(rng):
    law = Chaboche(**PARAMS)
    n = 10
    z = _random_states(law, n, rng)
    e0 = rng.normal(size=(n, 6)) * 1e-3
    e1 = e0 + 1e-2
    T = np.full(n, 800.0)
    _, z1, D = law.integrate(e0, e1, z, T, 0.0)
    assert np.array_equal(z1, z)
    el = Chaboche(**{**PARAMS, "sigma_y": 1e12})
    _, z2, D2 = el.integrate(e0, e1, z, T, 10.0)
    assert np.array_equal(z2, z) and np.allclose(D2, D, rtol=1e-14, atol=0)


def test_vectorized_over_extra_dimensions(rng):
    law = Chaboche(**PARAMS)
    z = _random_states(law, 12, rng)
    e0 = rng.normal(size=(12, 6)) * 1e-3
    e1 = e0 + rng.normal(size=(12, 6)) * 4e-3
    T = rng.uniform(400, 1200, 12)
    flat = law.integrate(e0, e1, z, T, 1.0)
    shaped = law.integrate(e0.reshape(3, 4, 6), e1.reshape(3, 4, 6), z.reshape(3, 4, 19),
                           T.reshape(3, 4), 1.0)
    for a, b in zip(flat, shaped):
        assert np.array_equal(a, b.reshape(a.shape))


def test_bad_parameters_and_make_material():
    with pytest.raises(MaterialError, match="C1: value -1 .* >= 0"):
        Chaboche(**{**PARAMS, "C1": -1.0})
    with pytest.raises(MaterialError, match="Chaboche exponent"):
        Chaboche(**{**PARAMS, "n": 0.5})
    with pytest.raises(MaterialError, match="not > -sigma_y"):
        Chaboche(**{**PARAMS, "sigma_y": 10e6, "Q": -20e6})
    # Q = 0 where sigma_y = 0 is no softening: only a negative Q is held to -sigma_y
    Chaboche(**{**PARAMS, "sigma_y": Table([300.0, 1300.0], [0.0, 200e6]),
                "Q": Table([300.0, 1300.0], [0.0, -50e6])})
    law = make_material("chaboche", **PARAMS)
    assert isinstance(law, Chaboche) and law.n_state == 19


@pytest.mark.parametrize("dt", [1e-3, 1.0, 1e3])
def test_back_stresses_beyond_saturation(rng, dt):
    """Back stresses 10-30 times their saturation Ci/Di (a drop of C with temperature
    leaves them there): the local Newton still converges, the tangent stays consistent
    (the bisection bracket assumes saturation; Newton does not need it)."""
    law = Chaboche(200e9, 0.3, K=300e6, n=5.0, sigma_y=50e6, C1=50e9, D1=2000.0,
                   C2=5e9, D2=500.0)                         # saturations 25 and 10 MPa
    n = 100
    z = law.initial_state(n)
    for sl in (slice(7, 13), slice(13, 19)):
        X = rng.normal(size=(n, 6)) * 300e6
        X[:, :3] -= X[:, :3].mean(1, keepdims=True)
        z[:, sl] = X
    e0 = rng.normal(size=(n, 6)) * 1e-3
    e1 = e0 + rng.normal(size=(n, 6)) * 3e-3
    T = np.full(n, 900.0)
    s, z1, D = law.integrate(e0, e1, z, T, dt)
    assert np.all(np.isfinite(s)) and np.all(z1[:, 6] > 0)
    Dn = _fd_tangent(law, e0, e1, z, T, dt)
    assert np.max(np.abs(D - Dn) / np.abs(D).max(axis=(1, 2))[:, None, None]) < 1e-6

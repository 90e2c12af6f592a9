"""Temperature loadings: parametric heat boundary conditions, time amplitudes and cycles,
random perturbations, and the nodal temperature of a query (docs/fom.md)."""
from __future__ import annotations

import re
from types import SimpleNamespace

import meshio
import numpy as np
import pytest
from mpi4py import MPI

pytest.importorskip("petsc4py")

from rom.config import CaseError
from rom.fom import heat as heat_module
from rom.fom.config import (
    ConvectionSpec,
    FixedTemperatureSpec,
    HeatConfig,
    LoadingConfig,
    MaterialConfig,
    PerturbationSpec,
    TableSpec,
    TemperatureSpec,
    TimeTableSpec,
)
from rom.fom.heat import solve_heat
from rom.fom.mesh import FEMesh
from rom.fom.run import load_fom_case, run_case
from rom.fom.setup import (
    amplitude_function,
    heat_boundary,
    loads_from_config,
    random_temperature_field,
    temperature_history,
)
from rom.io.snapshots import SnapshotStore
from rom.materials import Table
from rom.meshes import solid_block
from rom.parallel import UserError

K = 20.0                                  # conductivity [W/(m K)]


def _case(heat: HeatConfig, period: float | None = None):
    """What temperature_history reads from a loaded case (fom.heat, conductivity, period)."""
    return SimpleNamespace(fom=SimpleNamespace(heat=heat),
                           material=MaterialConfig(conductivity=TableSpec([K])),
                           loading=LoadingConfig(period=period))


# --------------------------------------------------------------------------- heat formulas
def test_biot_bar_with_linear_T_ext_formula_is_exact():
    """Bar along x, convection at both ends with T_ext = T_gas - G x (a formula, so each end
    sees its own gas temperature), no imposed temperature: the exact solution is linear,
    A + B x with k B = h0 (A - T_ext(0)) and -k B = h1 (A + B L - T_ext(L)), and every
    element reproduces it."""
    L, h0, h1, Tg, G = 0.1, 300.0, 800.0, 1400.0, 3000.0
    hc = HeatConfig(convection=[ConvectionSpec("xmin", h0, "T_gas - G * x"),
                                ConvectionSpec("xmax", h1, "T_gas - G * x")],
                    parameters={"T_gas": Tg, "G": G})
    M = np.array([[h0, -K], [h1, K + h1 * L]])
    A, B = np.linalg.solve(M, [h0 * Tg, h1 * (Tg - G * L)])
    for cell in ("tetra", "tetra10", "hexahedron"):
        mesh = FEMesh.from_meshio(solid_block((3, 2, 2), cell=cell, lengths=(L, 0.02, 0.02),
                                              distort=0.2))
        T = temperature_history({"heat": True}, mesh, _case(hc), comm=MPI.COMM_SELF)(0.0)
        assert np.abs(T - (A + B * mesh.points[:, 0])).max() < 1e-9 * Tg, cell
    assert 1000.0 < A + B * L < A < Tg             # heated at x = 0, cooled at x = L


def _plate_exact(x, y, Tg, Tc, G, L, H, h):
    """Plate [0, L] x [0, H] (adiabatic sides), T = T_cool at y = 0, convection at y = H
    with T_ext = T_gas + G cos(pi x / L): T = T_cool + C0 y + C1 sinh(m y) cos(m x)."""
    m = np.pi / L
    c0 = h * (Tg - Tc) / (K + h * H)
    s = (np.exp(m * (y - H)) - np.exp(-m * (y + H))) / (1 + np.exp(-2 * m * H))  # sinh/cosh(mH)
    return Tc + c0 * y + h * G * s / (h * np.tanh(m * H) + K * m) * np.cos(m * x)


def test_plate_with_T_ext_formula_converges_to_the_analytical_solution():
    """Biot number h H / k = 1; observed convergence of the nodal max error: hex8 ~ h^2,
    tet10 ~ h^3 (pre-asymptotic 2.6-2.8 at these sizes)."""
    L, H, W, h = 0.04, 0.01, 0.004, 2000.0
    hc = HeatConfig(fixed=[FixedTemperatureSpec("ymin", "T_cool")],
                    convection=[ConvectionSpec("ymax", h, "T_gas + G * cos(pi * x / 0.04)")],
                    parameters={"T_gas": 1400.0, "T_cool": 700.0, "G": 200.0})
    fixed, convection = heat_boundary(hc, hc.parameters)
    rates = {}
    for cell in ("hexahedron", "tetra10"):
        err = []
        for s in (1, 2, 4):
            mesh = FEMesh.from_meshio(solid_block((4 * s, s, 1), cell=cell, lengths=(L, H, W)))
            T = solve_heat(mesh, Table([0.0], [K]), fixed=fixed, convection=convection,
                           comm=MPI.COMM_SELF)
            x, y = mesh.points[:, 0], mesh.points[:, 1]
            err.append(np.abs(T - _plate_exact(x, y, 1400.0, 700.0, 200.0, L, H, h)).max())
        rates[cell] = np.log2(np.array(err[:-1]) / err[1:])
        assert err[-1] < 0.5, (cell, err)              # K, on a 700 K difference
    assert np.all((rates["hexahedron"] > 1.9) & (rates["hexahedron"] < 2.1)), rates
    assert np.all(rates["tetra10"] > 2.5), rates


def test_parameter_overrides_change_the_field_linearly(monkeypatch):
    """Constant k: T is affine in the parameters. T(T_gas = c) is the interpolation of
    T(a) and T(b); the T_gas derivative is the solution with T_gas = 1, T_cool = G = 0;
    one heat solve per distinct parameter set."""
    hc = HeatConfig(fixed=[FixedTemperatureSpec("ymin", "T_cool")],
                    convection=[ConvectionSpec("ymax", 2000.0, "T_gas + G * cos(pi * x / 0.04)")],
                    parameters={"T_gas": 1400.0, "T_cool": 700.0, "G": 200.0})
    mesh = FEMesh.from_meshio(solid_block((4, 2, 1), cell="tetra10", lengths=(0.04, 0.01, 0.004)))
    calls = []
    real = heat_module.solve_heat
    monkeypatch.setattr(heat_module, "solve_heat", lambda *a, **k: calls.append(1) or real(*a, **k))
    cache: dict = {}

    def T(**par):
        return temperature_history(TemperatureSpec(heat=True, parameters=par), mesh, _case(hc),
                                   comm=MPI.COMM_SELF, heat_cache=cache)(0.0)

    Ta, Tb, Tc = T(T_gas=1200.0), T(T_gas=1600.0), T(T_gas=1500.0)
    assert np.abs(Tc - (Ta + 0.75 * (Tb - Ta))).max() < 1e-9 * 1600.0
    unit = T(T_gas=1.0, T_cool=0.0, G=0.0)
    assert np.abs((Tb - Ta) / 400.0 - unit).max() < 1e-9
    # T_gas = 1 alone: the Biot solution h y / (k + h H) (linear, so exact)
    assert np.abs(unit - 2000.0 * mesh.points[:, 1] / (K + 2000.0 * 0.01)).max() < 1e-12
    assert (Tb - Ta).min() > -1e-9 and (Tb - Ta).max() > 100.0
    T(T_gas=1500.0)                                 # same parameters: cached
    assert len(calls) == 4
    # defaults apply when a loading overrides nothing
    assert np.abs(T() - (Ta + 0.5 * (Tb - Ta))).max() < 1e-9 * 1600.0


# --------------------------------------------------------------------------- amplitude, period
def test_amplitude_and_period_give_the_table_values_over_two_periods():
    """Flight-like cycle: ramp up, hold, ramp down, repeated; at the table times of both
    periods the factor is exactly the table value; in between, linear interpolation."""
    t, v = [0.0, 100.0, 500.0, 600.0], [0.0, 1.0, 1.0, 0.0]
    a = amplitude_function(TimeTableSpec(values=v, times=t), period=600.0)
    for k in (0, 1):
        assert [a(ti + 600.0 * k) for ti in t] == v
        assert a(50.0 + 600.0 * k) == 0.5 and a(550.0 + 600.0 * k) == 0.5
    assert a(1200.0 * (1 + 1e-15)) == 0.0                 # rounding of a time grid
    # the mechanical amplitude follows the same period; older key 'temperatures' = times
    loads = loads_from_config(LoadingConfig(amplitude=TimeTableSpec(values=v, temperatures=t),
                                            period=600.0), 0.0)
    assert [loads.factor(ti + 600.0) for ti in t] == v
    # temperature: T = T_base + a(t) (T_field - T_base), here with a formula source
    mesh = FEMesh.from_meshio(solid_block((2, 1, 1), lengths=(0.1, 0.01, 0.01)))
    spec = TemperatureSpec(formula="900 + 1000 * x", amplitude=TimeTableSpec(values=v, times=t),
                           T_base=300.0)
    hist = temperature_history(spec, mesh, _case(None, period=600.0))
    field = 900.0 + 1000.0 * mesh.points[:, 0]
    times = np.array([0.0, 50.0, 100.0, 300.0, 550.0, 600.0, 650.0, 1000.0, 1200.0])
    expected = 300.0 + np.array([a(s) for s in times])[:, None] * (field - 300.0)
    assert np.array_equal(hist.array(times), expected)
    assert np.array_equal(hist(700.0), field) and np.all(hist(1200.0) == 300.0)


@pytest.mark.parametrize("table, period, message", [
    ({"values": [0, 1], "times": [0, 0]}, None, "must be strictly increasing"),
    ({"values": [0, 1, 1], "times": [0, 1]}, None, "3 values for 2 times"),
    ({"values": [], "times": []}, None, "no value given"),
    ({"values": [0, 1], "times": [0, 700]}, 600.0, "must lie in [0, 600]"),
    ({"values": [0, 1], "times": [0, 1], "temperatures": [0, 2]}, None, "not two different"),
])
def test_bad_amplitude_tables(table, period, message):
    with pytest.raises(UserError, match=r"loading\.amplitude.*" + re.escape(message)):
        amplitude_function(TimeTableSpec(**table), period=period, where="loading.amplitude")


# --------------------------------------------------------------------------- perturbation
def test_perturbation_is_a_deterministic_smooth_function_of_the_coordinates():
    L = 0.01
    g = np.linspace(0.0, 0.05, 26)
    X = np.stack(np.meshgrid(g, g, g[:6], indexing="ij"), axis=-1).reshape(-1, 3)
    P = random_temperature_field(X, seed=3, amplitude=40.0, length=L)
    perm = np.random.default_rng(0).permutation(len(X))
    assert np.array_equal(random_temperature_field(X[perm], seed=3, amplitude=40.0, length=L),
                          P[perm])                          # independent of node numbering
    assert np.isclose(np.abs(P).max(), 40.0, rtol=1e-14, atol=0)
    Q = random_temperature_field(X, seed=4, amplitude=40.0, length=L)
    assert np.linalg.norm(P - Q) > 0.5 * np.linalg.norm(P)  # another seed, another field
    assert abs(np.mean(P * Q)) < 0.5 * np.sqrt(np.mean(P**2) * np.mean(Q**2))
    # smooth at the scale `length`: finite-difference gradients bounded by 2 pi amplitude / L
    F = P.reshape(26, 26, 6)
    dx = g[1] - g[0]
    grad = max(np.abs(np.diff(F, axis=d)).max() / dx for d in range(3))
    assert 0.5 * 40.0 / L < grad < 2 * np.pi * 40.0 / L
    # in a loading: added to the source before the amplitude
    mesh = FEMesh.from_meshio(solid_block((3, 2, 2), lengths=(0.03, 0.02, 0.02)))
    pert = PerturbationSpec(seed=3, amplitude=40.0, length=L)
    hist = temperature_history(TemperatureSpec(uniform=800.0, perturbation=pert,
                                               amplitude=TimeTableSpec([0.0, 1.0], [0.0, 1.0])),
                               mesh, None)
    P_mesh = random_temperature_field(mesh.points, seed=3, amplitude=40.0, length=L)
    assert np.array_equal(hist(1.0), 800.0 + P_mesh)
    assert np.allclose(hist(0.5), 293.15 + 0.5 * (800.0 + P_mesh - 293.15), rtol=1e-15)
    assert np.all(hist(0.0) == 293.15)


# --------------------------------------------------------------------------- case-file errors
CASE = """
name: blade
mesh: bar.inp
snapshots: {{store: out/bar.snapshots.h5}}
output: {{directory: out, plot: false, write_modes: false}}
material:
  law: elastic
  E: {{values: [2.0e11]}}
  nu: {{values: [0.3]}}
  alpha: {{values: [1.2e-5]}}
  T_ref: 300
  conductivity: {{values: [20.0]}}
loading:
  dirichlet: [{{group: xmin, components: [x]}}, {{group: ymin, components: [y]}},
              {{group: zmin, components: [z]}}]
  pressure: [{{group: xmax, value: -5.0e7}}]
  amplitude: {{times: [0, 1, 3, 4], values: [0, 1, 1, 0]}}
  period: {period}
  times: {{start: 0, stop: 8, steps: 16}}
fom:
  petsc_options: {{ksp_rtol: 1e-13}}
  newton: {{rtol: 1e-11}}
  write_xdmf: false
  heat:
    parameters: {{T_gas: 1400, T_cool: 600}}
    fixed: [{{group: xmin, value: T_cool}}]
    convection: [{{group: xmax, h: 500, T_ext: "{T_ext}"}}]
  loadings:
    - name: hot
      temperature:
        heat: true
        parameters: {parameters}
        amplitude: {{times: [0, 1, 3, 4], values: [0, 1, 1, 0]}}
        T_base: 300
    - {{name: hot_again, temperature: {{heat: true, parameters: {{T_gas: 1500}}}}}}
    - {{name: nominal, temperature: {{heat: true}}}}
"""


def _write(path, *, period="4", T_ext="T_gas - 2000 * y", parameters="{T_gas: 1500}"):
    if not (path / "bar.inp").exists():
        meshio.write(path / "bar.inp", solid_block((3, 1, 1), cell="tetra10",
                                                   lengths=(0.1, 0.02, 0.02)))
    (path / "case.yaml").write_text(CASE.format(period=period, T_ext=T_ext,
                                                parameters=parameters))
    return path / "case.yaml"


@pytest.mark.parametrize("change, message", [
    ({"T_ext": "T_gs - 2000 * y"}, ("fom.heat.convection[0].T_ext: formula 'T_gs - 2000 * y' "
                                    "uses unknown name(s) T_gs (known: x, y, z, T_gas, T_cool;")),
    ({"T_ext": "T_gas - 2000 * t"}, "uses unknown name(s) t (known: x, y, z, T_gas, T_cool;"),
    ({"parameters": "{T_gs: 1500}"}, ("fom.loadings[0].temperature.parameters: unknown "
                                      "parameter(s) T_gs (fom.heat.parameters defines: T_gas, "
                                      "T_cool)")),
    ({"period": "0"}, "loading.period: expected a value in (0, inf], got 0"),
    ({"period": "-5"}, "loading.period: expected a value in (0, inf], got -5"),
    ({"period": "3"}, ("loading.amplitude.times: with loading.period = 3 s the table times "
                       "must lie in [0, 3], got [0, 4]")),
    ({"T_ext": "T_gas * (1 +"}, "fom.heat.convection[0].T_ext:"),
])
def test_case_file_errors_name_the_file_and_the_key(tmp_path, change, message):
    case = _write(tmp_path, **change)
    with pytest.raises(CaseError) as err:
        load_fom_case(case)
    assert str(err.value).startswith(f"{case}: ")
    assert message in str(err.value)


def test_run_time_formula_error_names_the_file_and_the_key(tmp_path):
    case = _write(tmp_path, T_ext="T_gas * sqrt(y - 0.01)")      # NaN below y = 0.01
    with pytest.raises(UserError) as err:
        run_case(load_fom_case(case), MPI.COMM_SELF, progress=False)
    assert str(err.value) == (f"{case}: fom.heat.convection[0].T_ext: formula "
                              "'T_gas * sqrt(y - 0.01)' gives non-finite values")


def test_query_spec_errors(tmp_path):
    fc = load_fom_case(_write(tmp_path))
    mesh = FEMesh.from_meshio(meshio.read(tmp_path / "bar.inp"))
    with pytest.raises(CaseError, match="temperature.perturbation.seed: required key is missing"):
        temperature_history({"uniform": 800, "perturbation": {"amplitude": 4, "length": 1}},
                            mesh, fc)
    with pytest.raises(UserError, match=r"temperature.parameters: only formula and heat"):
        temperature_history({"uniform": 800, "parameters": {"a": 1}}, mesh, fc)
    with pytest.raises(UserError, match=r"formula 'T0 \+ A \* x' uses unknown name\(s\) A "
                                        r"\(known: x, y, z, t, T0;"):
        temperature_history({"formula": "T0 + A * x", "parameters": {"T0": 800}}, mesh, fc)
    ok = temperature_history({"formula": "T0 + A * x", "parameters": {"T0": 800, "A": 1e3}},
                             mesh, fc)
    assert np.allclose(ok(0.0), 800.0 + 1e3 * mesh.points[:, 0], rtol=1e-15)


# --------------------------------------------------------------------------- end to end
@pytest.mark.mpi
def test_run_case_stores_the_cycled_heat_temperature(comm, shared_tmp_path):
    """Heat with parameters + amplitude + period over two cycles (tet10 bar, elastic):
    stored T = T_base + a(t) (T_heat - T_base), with T_heat of an independent heat solve;
    displacements repeat after one period; parameters stored with the snapshots."""
    if comm.rank == 0:
        _write(shared_tmp_path)
    comm.barrier()
    fc = load_fom_case(shared_tmp_path / "case.yaml")
    store_path = run_case(fc, comm, progress=False)
    mesh = FEMesh.from_meshio(meshio.read(shared_tmp_path / "bar.inp"))

    def T_heat(T_gas):
        return solve_heat(mesh, Table([0.0], [20.0]), fixed=[("xmin", 600.0)],
                          convection=[("xmax", 500.0, lambda X: T_gas - 2000.0 * X[:, 1])],
                          comm=MPI.COMM_SELF)

    T1500, T1400 = T_heat(1500.0), T_heat(1400.0)
    assert np.ptp(T1500[np.isclose(mesh.points[:, 0], 0.1)]) > 1.0     # T_ext varies on xmax
    n = mesh.n_nodes
    times = np.linspace(0.0, 8.0, 17)[1:]
    a = np.interp(np.where((times % 4 == 0), 4.0, times % 4), [0, 1, 3, 4], [0, 1, 1, 0])
    with SnapshotStore.open(store_path, comm=MPI.COMM_SELF) as store:
        T = {ld.name: store.read("temperature", loading=ld.name, rows=(0, n))
             for ld in store.loadings}
        u = store.read("displacement", loading="hot", rows=(0, 3 * n))
        params = {ld.name: ld.parameters for ld in store.loadings}
        assert np.allclose(store.snapshot_table()["time"][:16], times, rtol=0, atol=1e-12)
    expected = 300.0 + a[None, :] * (T1500 - 300.0)[:, None]
    assert np.abs(T["hot"] - expected).max() < 1e-9 * 1500.0
    assert np.abs(T["hot_again"] - T1500[:, None]).max() < 1e-9 * 1500.0
    assert np.abs(T["nominal"] - T1400[:, None]).max() < 1e-9 * 1500.0
    assert np.abs(u[:, 8:] - u[:, :8]).max() <= 1e-8 * np.abs(u).max()   # periodic response
    assert np.abs(u[:, 7]).max() < 1e-12 and np.abs(u[:, 3]).max() > 1e-5  # a(4) = 0
    p = params["hot"]
    assert p["period"] == 4.0
    assert p["temperature"]["parameters"] == {"T_gas": 1500.0, "T_cool": 600.0}
    assert p["temperature"]["amplitude"] == {"times": [0.0, 1.0, 3.0, 4.0],
                                             "values": [0.0, 1.0, 1.0, 0.0]}
    assert p["temperature"]["T_base"] == 300.0
    assert p["temperature"]["boundary"]["convection"][0]["T_ext"] == "T_gas - 2000 * y"
    assert params["nominal"]["temperature"]["parameters"] == {"T_gas": 1400.0, "T_cool": 600.0}
    comm.barrier()

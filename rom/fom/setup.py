"""Build solver objects (material, loads, temperature fields) from the case-file sections.

Temperature loadings (docs/fom.md, "Temperature loadings"): a source field (uniform,
formula, file, or the steady heat solver with named parameters), an optional smooth
random perturbation, and an optional time amplitude (periodic with ``loading.period``):

    T(x, t) = T_base + a(t) (T_source(x, t) + P(x) - T_base)

:func:`temperature_history` gives the nodal temperature of any such spec, exactly as
``python -m rom.fom`` computes it (for query scripts of the reduced model).
"""
from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path

import numpy as np

from ..formula import SAFE, Expression
from ..io.mesh import read_mesh
from ..materials import Chaboche, MaterialError, Norton, Table, ThermoElastic
from ..materials.chaboche import PARAMETERS as CHABOCHE_PARAMETERS
from ..materials.user import load_law
from ..parallel import UserError
from .config import (
    HeatConfig,
    LoadingCase,
    LoadingConfig,
    MaterialConfig,
    PerturbationSpec,
    TableSpec,
    TemperatureSpec,
    TimeTableSpec,
)
from .loads import Centrifugal, Dirichlet, Loads, Pressure, component_indices
from .mesh import FEMesh

__all__ = [
    "Amplitude",
    "Formula",
    "TemperatureHistory",
    "amplitude_function",
    "check_fom_sections",
    "heat_boundary",
    "heat_parameters",
    "loading_parameters",
    "loads_from_config",
    "material_from_config",
    "number_or_formula",
    "random_temperature_field",
    "table",
    "temperature_function",
    "temperature_history",
]

_SAFE = SAFE                   # the functions and constants of every formula (rom.formula)
_COORDS = ("x", "y", "z")


# --------------------------------------------------------------------------- formulas
class Formula:
    """A numpy expression, checked and compiled once, evaluated on nodal or point arrays.

    The case file's formulas (temperature formulas, heat boundary values), evaluated by
    :class:`rom.formula.Expression` (the one evaluator: a checked syntax tree, no
    attributes, subscripts, strings or calls but of the functions of ``_SAFE``).
    Namespace: the functions and constants of ``_SAFE`` (sin, exp, where, pi, ...) and
    ``names``.

    Parameters
    ----------
    text : the expression, e.g. ``"T_gas - 200 * z / 0.05"``
    names : variable names it may use (coordinates, time, parameters)
    where : the case-file key, for error messages

    Raises
    ------
    UserError : syntax error, a name that is neither in ``names`` nor a function, or a
        construct outside the formula language (:mod:`rom.formula`).
    """

    def __init__(self, text: str, names: Iterable[str], where: str):
        self.text, self.where, self.names = text, where, tuple(names)
        self.expression = Expression(text, self.names, where)
        self.used = self.expression.used
        self.code = self.expression.code

    def __call__(self, n: int, at: str = "", **values) -> np.ndarray:
        """Values (n,) of the expression for the given ``values`` (arrays of shape (n,)
        or scalars); ``at`` completes the error messages (e.g. ``" at t = 3 s"``)."""
        val = self.expression.evaluate(**values)
        try:
            val = np.broadcast_to(np.asarray(val, float), (n,)).copy()
        except Exception as exc:  # noqa: BLE001 - any error in the user's formula
            raise UserError(f"{self.where}: formula {self.text!r}: {type(exc).__name__}: "
                            f"{exc}") from None
        if not np.all(np.isfinite(val)):
            raise UserError(f"{self.where}: formula {self.text!r} gives non-finite values{at}")
        return val

    def at_points(self, X: np.ndarray, at: str = "", **values) -> np.ndarray:
        """Values (m,) at points X (m, 3) [m] (``x, y, z`` from X)."""
        X = np.asarray(X, float).reshape(-1, 3)
        return self(len(X), at, x=X[:, 0], y=X[:, 1], z=X[:, 2], **values)


def number_or_formula(value, key: str) -> float | str:
    """A case-file value that is a number or a formula string (checked; names the key)."""
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        from ..config import _show
        raise UserError(f"{key}: expected a number or a formula string, got {_show(value)}")
    if isinstance(value, str):
        try:
            value = float(value)            # YAML 1.1 reads 1e3 as a string
        except ValueError:
            if not value.strip():
                raise UserError(f"{key}: empty formula") from None
            return value
    value = float(value)
    if not np.isfinite(value):
        raise UserError(f"{key}: expected a finite number, got {value}")
    return value


def _check_parameter_names(names: Iterable[str], key: str) -> None:
    for name in names:
        if not name.isidentifier() or name.startswith("__") or name in (*_COORDS, "t") \
                or name in _SAFE:
            raise UserError(f"{key}: parameter name {name!r} must be an identifier other than "
                            f"x, y, z, t, dunder names and the functions {', '.join(_SAFE)}")


# --------------------------------------------------------------------------- tables
def table(spec: TableSpec | None, name: str) -> Table:
    """A :class:`~rom.materials.Table` from a case-file table (one value: a constant)."""
    if spec is None or not spec.values:
        raise MaterialError(f"material.{name}: no value given")
    temps = spec.temperatures or ([0.0] if len(spec.values) == 1 else [])
    if len(temps) != len(spec.values):
        raise MaterialError(f"material.{name}: {len(spec.values)} values for {len(temps)} "
                            "temperatures")
    return Table(temps, spec.values, f"material.{name}")


@dataclasses.dataclass(frozen=True)
class Amplitude:
    """A piecewise-linear factor of time, optionally periodic: a(t) = a(t mod period).

    A time that is a positive multiple of the period is the *end* of a cycle (the table's
    value at ``period``), time 0 its start; for a cycle that ends where it starts
    (``a(0) = a(period)``) both agree.
    """

    times: np.ndarray                      # (m,) increasing [s]
    values: np.ndarray                     # (m,) [-]
    period: float | None = None            # [s]

    def __call__(self, t: float) -> float:
        t = float(t)
        if self.period is not None:
            P = self.period
            tau = t % P
            if t > 0 and (tau <= 1e-9 * P or P - tau <= 1e-9 * P):
                tau = P                    # k P, k >= 1 (up to rounding of the time grid)
            t = tau
        return float(np.interp(t, self.times, self.values))


def amplitude_function(spec: TimeTableSpec | TableSpec, *, period: float | None = None,
                       where: str = "amplitude") -> Amplitude:
    """The :class:`Amplitude` of a case-file time table (checked; errors name ``where``).

    Parameters
    ----------
    spec : table with ``values`` and ``times`` (or the older ``temperatures``) [s]
    period : ``loading.period`` [s] or None; the table times must lie in [0, period]
    """
    times = list(getattr(spec, "times", None) or [])
    older = list(spec.temperatures or [])
    if times and older and times != older:
        raise UserError(f"{where}: give the times once, as 'times' ('temperatures' is their "
                        f"older name), not two different lists ({times} and {older})")
    times = times or older
    values = list(spec.values)
    if not values:
        raise UserError(f"{where}.values: no value given")
    if not times and len(values) == 1:
        times = [0.0]
    if len(times) != len(values):
        raise UserError(f"{where}: {len(values)} values for {len(times)} times")
    t, v = np.asarray(times, float), np.asarray(values, float)
    if not (np.all(np.isfinite(t)) and np.all(np.isfinite(v))):
        raise UserError(f"{where}: the table has non-finite entries")
    if np.any(np.diff(t) <= 0):
        raise UserError(f"{where}.times: must be strictly increasing, got {times}")
    if period is not None:
        if not period > 0:
            raise UserError(f"loading.period: expected a period > 0 s, got {period:g}")
        if t[0] < 0 or t[-1] > period * (1 + 1e-12):
            raise UserError(f"{where}.times: with loading.period = {period:g} s the table "
                            f"times must lie in [0, {period:g}], got [{t[0]:g}, {t[-1]:g}]")
    return Amplitude(t, v, None if period is None else float(period))


# --------------------------------------------------------------------------- material, loads
def material_from_config(cfg: MaterialConfig):
    """The constitutive law of a ``material:`` section."""
    common = {"E": table(cfg.E, "E"), "nu": table(cfg.nu, "nu"), "alpha": table(cfg.alpha, "alpha"),
                  "T_ref": cfg.T_ref}
    if cfg.law == "elastic":
        return ThermoElastic(**common)
    if cfg.law == "norton":
        return Norton(**common, K=table(cfg.K, "K"), n=table(cfg.n, "n"))
    if cfg.law == "chaboche":
        return Chaboche(**common, **{k: table(getattr(cfg, k), k) for k in CHABOCHE_PARAMETERS})
    return load_law(cfg.law, **common, **{k: table(v, f"parameters.{k}")
                                          for k, v in cfg.parameters.items()})


def loads_from_config(cfg: LoadingConfig, density: float, scale: float = 1.0) -> Loads:
    """The :class:`~rom.fom.loads.Loads` of a ``loading:`` section (values times ``scale``;
    amplitude periodic with ``loading.period``)."""
    amp = None
    if cfg.amplitude is not None:
        amp = amplitude_function(cfg.amplitude, period=cfg.period, where="loading.amplitude")
    cen = None
    if cfg.centrifugal is not None:
        c = cfg.centrifugal
        cen = Centrifugal(c.omega * np.sqrt(abs(scale)), tuple(c.axis_point),
                          tuple(c.axis_direction))
    return Loads(
        dirichlet=[Dirichlet(d.group, component_indices(d.components,
                                                        f"loading.dirichlet[{i}]"),
                             d.value * scale) for i, d in enumerate(cfg.dirichlet)],
        pressure=[Pressure(p.group, p.value * scale) for p in cfg.pressure],
        centrifugal=cen, density=density, amplitude=amp)


# --------------------------------------------------------------------------- heat loadings
def heat_parameters(spec: TemperatureSpec, heat: HeatConfig | None,
                    where: str = "temperature") -> dict[str, float]:
    """The parameters of a heat loading: ``fom.heat.parameters`` overridden by
    ``temperature.parameters`` (names must be declared in ``fom.heat.parameters``)."""
    defaults = dict(heat.parameters) if heat is not None else {}
    unknown = sorted(set(spec.parameters) - set(defaults))
    if unknown:
        raise UserError(f"{where}.parameters: unknown parameter(s) {', '.join(unknown)} "
                        f"(fom.heat.parameters defines: {', '.join(defaults) or 'none'})")
    return {k: float(v) for k, v in {**defaults, **spec.parameters}.items()}


def heat_boundary(heat: HeatConfig, parameters: Mapping[str, float]):
    """(fixed, convection) lists for :func:`rom.fom.heat.solve_heat` with the formulas of
    ``fom.heat`` bound to ``parameters``: a value is a number or a function of points
    (m, 3) [m] -> (m,) [K]."""
    params = {k: float(v) for k, v in parameters.items()}

    def value(v, key):
        v = number_or_formula(v, key)
        if isinstance(v, float):
            if not v > 0:
                raise UserError(f"{key}: expected a temperature > 0 K, got {v:g} K")
            return v
        f = Formula(v, (*_COORDS, *params), key)
        return lambda X: f.at_points(X, **params)

    fixed = [(s.group, value(s.value, f"fom.heat.fixed[{i}].value"))
             for i, s in enumerate(heat.fixed)]
    convection = [(s.group, s.h, value(s.T_ext, f"fom.heat.convection[{i}].T_ext"))
                  for i, s in enumerate(heat.convection)]
    return fixed, convection


# --------------------------------------------------------------------------- perturbation
def random_temperature_field(points: np.ndarray, *, seed: int, amplitude: float,
                             length: float, modes: int = 32) -> np.ndarray:
    """A smooth random field (n,) [K] at points (n, 3) [m], with max |.| = ``amplitude``.

    A sum of ``modes`` Fourier modes ``c_k cos(2 pi kappa_k . x + phi_k)`` whose wave
    vectors are uniform in the ball |kappa| <= 1 / length (wavelengths >= ``length``):
    band-limited white noise, so |grad| <= 2 pi amplitude / length over the whole space
    (Bernstein). It is a function of the coordinates and the seed only (independent of
    node numbering and rank count); the normalization takes the max over ``points``.
    """
    X = np.asarray(points, float).reshape(-1, 3)
    rng = np.random.default_rng(seed)
    d = rng.standard_normal((modes, 3))
    d /= np.linalg.norm(d, axis=1, keepdims=True)
    kappa = d * (rng.random(modes) ** (1.0 / 3.0) / length)[:, None]   # [1/m]
    phase = rng.uniform(0.0, 2.0 * np.pi, modes)
    coef = rng.standard_normal(modes)
    field = np.zeros(len(X))
    for k in range(modes):  # loop over modes (O(n) memory)
        field += coef[k] * np.cos(2.0 * np.pi * (X @ kappa[k]) + phase[k])
    peak = np.abs(field).max() if len(X) else 0.0
    if amplitude == 0 or peak == 0:
        return np.zeros(len(X))
    return field * (amplitude / peak)


# --------------------------------------------------------------------------- temperature
def _sources(spec: TemperatureSpec) -> list[str]:
    given = [k for k in ("uniform", "formula", "file") if getattr(spec, k) is not None]
    return given + (["heat"] if spec.heat else [])


def _check_spec(spec: TemperatureSpec, where: str, period: float | None) -> None:
    """What can be checked without the mesh and the heat section."""
    given = _sources(spec)
    if len(given) != 1:
        raise UserError(f"{where}: give exactly one of uniform, formula, file, heat "
                        f"(got {', '.join(given) or 'none'})")
    if spec.parameters and given[0] not in ("formula", "heat"):
        raise UserError(f"{where}.parameters: only formula and heat sources have parameters "
                        f"(this one is {given[0]})")
    _check_parameter_names(spec.parameters, f"{where}.parameters")
    if spec.uniform is not None and not spec.uniform > 0:
        raise UserError(f"{where}.uniform: expected a temperature > 0 K, got {spec.uniform:g} K")
    if spec.amplitude is not None and not spec.T_base > 0:
        raise UserError(f"{where}.T_base: expected a temperature > 0 K, got {spec.T_base:g} K")
    if spec.formula is not None:
        Formula(spec.formula, (*_COORDS, "t", *spec.parameters), f"{where}.formula")
    if spec.amplitude is not None:
        amplitude_function(spec.amplitude, period=period, where=f"{where}.amplitude")


class TemperatureHistory:
    """Nodal temperature of a loading as a function of time: ``T = history(t)`` (n_nodes,) [K].

    Attributes
    ----------
    source : the source field (n_nodes,) [K] plus the perturbation, None when the source
        depends on time (a formula of t)
    amplitude : the time factor, or None (T is then the source field)
    T_base : temperature where the amplitude is 0 [K]
    parameters : the resolved parameters of a formula or heat source, else {}
    """

    def __init__(self, field: Callable[[float], np.ndarray], *, steady: bool,
                 amplitude: Amplitude | None, T_base: float, parameters: dict,
                 where: str = "temperature", positive: bool = False):
        self._field = field
        self.amplitude, self.T_base, self.parameters = amplitude, float(T_base), parameters
        self.where, self.positive = where, positive
        self.source = field(0.0) if steady else None
        if self.source is not None and positive:
            # T is linear in the amplitude a: its extremes over time are at a's extremes
            a = [1.0] if amplitude is None else [amplitude.values.min(), amplitude.values.max()]
            for ai in a:  # loop over (at most two) amplitude values
                self._check_positive(self.T_base + ai * (self.source - self.T_base), "")

    def __call__(self, t: float) -> np.ndarray:
        if self.source is not None:
            return self._apply(self.source, t)
        T = self._apply(self._field(float(t)), t)
        return self._check_positive(T, f" at t = {t:g} s") if self.positive else T

    def _apply(self, F: np.ndarray, t: float) -> np.ndarray:
        if self.amplitude is None:
            return F
        return self.T_base + self.amplitude(t) * (F - self.T_base)

    def _check_positive(self, T: np.ndarray, at: str) -> np.ndarray:
        """``T``, or a :class:`UserError` if some temperature is not > 0 K."""
        bad = np.flatnonzero(~(T > 0))
        if bad.size:
            raise UserError(f"{self.where}: temperature <= 0 K{at} ({T[bad[0]]:g} K at node "
                            f"{bad[0]}, {bad.size} node(s)): temperatures are absolute [K]")
        return T

    def array(self, times: Iterable[float]) -> np.ndarray:
        """Temperatures (n_times, n_nodes) [K] at ``times`` [s] (the online model's input)."""
        return np.array([self(float(t)) for t in times])


def temperature_function(spec: TemperatureSpec, mesh: FEMesh, *, heat=None,
                         period: float | None = None, where: str = "temperature",
                         positive: bool = False) -> TemperatureHistory:
    """The nodal temperature t [s] -> (n_nodes,) [K] of a temperature spec.

    Parameters
    ----------
    spec : the spec (one source; optional parameters, perturbation, amplitude)
    mesh : the mesh (nodal coordinates, node count)
    heat : for ``spec.heat``: a callable ``parameters -> (n_nodes,)`` giving the steady
        heat solution for the loading's parameter overrides (see
        :func:`temperature_history`, which builds it from the case)
    period : ``loading.period`` [s] of the amplitude, or None
    where : the case-file key of the spec, for error messages
    positive : refuse (:class:`UserError`) a temperature <= 0 K at a node, when the history
        is made (a steady source, over the amplitude's range) or at each time (else); off
        for superposition (fields of unit parameters, differences)
    """
    _check_spec(spec, where, period)
    n = mesh.n_nodes
    pert = np.zeros(n)
    if spec.perturbation is not None:
        p: PerturbationSpec = spec.perturbation
        pert = random_temperature_field(mesh.points, seed=p.seed, amplitude=p.amplitude,
                                        length=p.length, modes=p.modes)
    amp = None if spec.amplitude is None else amplitude_function(
        spec.amplitude, period=period, where=f"{where}.amplitude")
    params: dict = {}
    steady = True
    if spec.uniform is not None:
        T = np.full(n, float(spec.uniform)) + pert
        field = lambda t: T
    elif spec.file is not None:
        m = read_mesh(spec.file)
        if spec.field not in m.point_data:
            raise UserError(f"{where}.field: {spec.file} has no point field {spec.field!r} "
                            f"(fields: {', '.join(m.point_data) or 'none'})")
        T = np.asarray(m.point_data[spec.field], float).reshape(-1)
        if T.shape != (n,):
            raise UserError(f"{where}.field: field {spec.field!r} has {T.size} values, "
                            f"the mesh has {n} nodes")
        T = T + pert
        field = lambda t: T
    elif spec.heat:
        if heat is None:
            raise UserError(f"{where}: heat: true needs a fom.heat section")
        T = np.asarray(heat(dict(spec.parameters)), float) + pert
        params = {k: float(v) for k, v in spec.parameters.items()}
        field = lambda t: T
    else:
        f = Formula(spec.formula, (*_COORDS, "t", *spec.parameters), f"{where}.formula")
        params = {k: float(v) for k, v in spec.parameters.items()}
        x, y, z = mesh.points.T
        steady = "t" not in f.used

        def field(t: float) -> np.ndarray:
            return f(n, f" at t = {t:g} s", x=x, y=y, z=z, t=t, **params) + pert

    return TemperatureHistory(field, steady=steady, amplitude=amp, T_base=spec.T_base,
                              parameters=params, where=where, positive=positive)


class _HeatSolutions:
    """Steady heat solutions of a case, one solve per distinct parameter set (collective)."""

    def __init__(self, fc, mesh: FEMesh, comm, where: str):
        self.fc, self.mesh, self.comm, self.where = fc, mesh, comm, where
        self.cache: dict = {}

    def __call__(self, overrides: dict) -> np.ndarray:
        from . import heat as heat_module  # PETSc only when a heat solve is needed
        hc = self.fc.fom.heat
        params = heat_parameters(TemperatureSpec(heat=True, parameters=overrides), hc,
                                 self.where)
        key = tuple(sorted(params.items()))
        if key not in self.cache:
            fixed, convection = heat_boundary(hc, params)
            self.cache[key] = heat_module.solve_heat(
                self.mesh, table(self.fc.material.conductivity, "conductivity"), fixed=fixed,
                convection=convection, comm=self.comm, petsc_options=hc.petsc_options)
        return self.cache[key]


def temperature_history(spec: TemperatureSpec | Mapping, mesh: FEMesh, fc=None, *,
                        comm=None, where: str = "temperature",
                        heat_cache: dict | None = None, positive: bool = False
                        ) -> TemperatureHistory:
    """Nodal temperature history of any temperature spec, as ``python -m rom.fom`` computes it.

    Use it to give the online model the temperature of a new query::

        fc = load_fom_case("case.yaml")
        mesh = FEMesh.from_meshio(read_mesh(fc.case.mesh))
        T = temperature_history({"heat": True, "parameters": {"T_gas": 1500},
                                 "perturbation": {"seed": 7, "amplitude": 40, "length": 0.01}},
                                mesh, fc).array(times)      # (n_times, n_nodes) [K]

    Parameters
    ----------
    spec : a :class:`~rom.fom.config.TemperatureSpec`, or a mapping with the keys of a
        loading's ``temperature:`` (validated like the case file)
    mesh : the case's mesh
    fc : the loaded case (:class:`rom.fom.run.FOMCase`, or any object with ``fom``,
        ``material`` and ``loading``): gives ``fom.heat``, ``material.conductivity`` and
        ``loading.period``; may be None for sources without heat and period
    comm : communicator of the heat solve (collective when the spec has ``heat: true``)
    where : case-file key of the spec, for error messages
    heat_cache : dict shared between calls so that the heat equation is solved once per
        distinct parameter set (keys: sorted parameter items; values: nodal T)
    positive : refuse temperatures <= 0 K (:func:`temperature_function`; ``rom.fom`` does)
    """
    if isinstance(spec, Mapping):
        from ..config import _Ctx
        spec = _Ctx("temperature spec", Path.cwd()).build(TemperatureSpec, dict(spec), where)
    period = None if fc is None or fc.loading is None else fc.loading.period
    heat = None
    hc = None if fc is None or fc.fom is None else fc.fom.heat
    if spec.heat and hc is not None:
        _check_heat(hc, fc.material)
        heat = _HeatSolutions(fc, mesh, comm, where)
        if heat_cache is not None:
            heat.cache = heat_cache
    history = temperature_function(spec, mesh, heat=heat, period=period, where=where,
                                   positive=positive)
    if heat is not None:
        history.parameters = heat_parameters(spec, hc, where)
    return history


# --------------------------------------------------------------------------- checks, storage
def _check_heat(hc: HeatConfig, material: MaterialConfig | None, used: bool = True) -> None:
    _check_parameter_names(hc.parameters, "fom.heat.parameters")
    heat_boundary(hc, hc.parameters)              # numbers or formulas of known names
    if used and (material is None or not material.conductivity.values):
        raise UserError("material.conductivity: required by the heat solver (fom.heat)")


def check_fom_sections(fom, material: MaterialConfig | None, loading: LoadingConfig | None
                       ) -> None:
    """Check what the schema cannot: heat formulas and parameters, temperature sources,
    amplitude tables and the period (raises :class:`UserError` naming the key)."""
    period = None if loading is None else loading.period
    if loading is not None and loading.amplitude is not None:
        amplitude_function(loading.amplitude, period=period, where="loading.amplitude")
    if fom.heat is not None:
        _check_heat(fom.heat, material, any(lc.temperature.heat for lc in fom.loadings))
    for i, lc in enumerate(fom.loadings):
        where = f"fom.loadings[{i}].temperature"
        _check_spec(lc.temperature, where, period)
        if lc.temperature.heat:
            if fom.heat is None:
                raise UserError(f"{where}: heat: true needs a fom.heat section")
            heat_parameters(lc.temperature, fom.heat, where)


def _plain(value):
    if dataclasses.is_dataclass(value):
        return {k: _plain(v) for k, v in vars(value).items() if v is not None}
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def loading_parameters(lc: LoadingCase, fc=None) -> dict:
    """Parameters of a loading stored with the snapshots: scale, the temperature spec
    (source, parameters, perturbation, amplitude, T_base), and with ``fc`` (the case) the
    resolved heat parameters and boundary conditions and ``loading.period``."""
    t = lc.temperature
    temp = _plain(t)
    if not t.amplitude:
        temp.pop("T_base", None)
    if t.amplitude is not None:
        temp["amplitude"] = {"times": [float(v) for v in t.amplitude.times],
                             "values": [float(v) for v in t.amplitude.values]}
    if not t.parameters:
        temp.pop("parameters", None)
    out = {"scale": lc.scale, "temperature": temp}
    if fc is not None:
        hc = fc.fom.heat
        if t.heat and hc is not None:
            temp["parameters"] = heat_parameters(t, hc)
            temp["boundary"] = _plain({"fixed": hc.fixed, "convection": hc.convection})
        if fc.loading is not None and fc.loading.period is not None:
            out["period"] = fc.loading.period
    return out

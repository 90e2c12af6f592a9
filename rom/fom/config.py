"""Case-file sections of the full-order solver: ``material:``, ``loading:`` and ``fom:``.

Written in the style of :mod:`rom.config` (same ``_f`` field helper, same loader,
same :class:`~rom.config.CaseError` messages); wired into :class:`rom.config.Case`
as the optional fields ``material``, ``loading`` and ``fom``.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from ..config import TimeGrid, _f

__all__ = [
    "NUMBER_OR_FORMULA",
    "CentrifugalSpec",
    "ConvectionSpec",
    "DirichletSpec",
    "FOMConfig",
    "FixedTemperatureSpec",
    "HeatConfig",
    "LoadingCase",
    "LoadingConfig",
    "MaterialConfig",
    "NewtonConfig",
    "PerturbationSpec",
    "PressureSpec",
    "TableSpec",
    "TemperatureSpec",
    "TimeTableSpec",
]


class _NumberOrFormula:
    """Schema type of a value that is a number or a numpy formula string.

    The loader of :mod:`rom.config` knows only optional unions (``float | None``), not
    ``float | str``. A ``Literal`` whose one argument compares equal to every value passes
    the YAML value through unchanged; :func:`rom.fom.setup.check_fom_sections` (called by
    :func:`rom.fom.run.load_fom_case`) then checks it is a number or a formula, naming the
    key and the file. Shown as ``float \\| str`` in docs/case-file.md.
    """

    def __eq__(self, other) -> bool:
        return True

    def __hash__(self) -> int:
        return 0

    def __repr__(self) -> str:
        return "float \\| str"


NUMBER_OR_FORMULA = _NumberOrFormula()
NumberOrFormula = Literal[NUMBER_OR_FORMULA]


@dataclass(frozen=True)
class TableSpec:
    values: list[float] = _f(doc="property values (one value: a constant)", factory=list)
    temperatures: list[float] = _f(doc="temperatures of the values [K] (increasing); "
                                       "empty for a constant", factory=list)

    def _validate(self) -> tuple[str, str] | None:
        """(key, message) of a table temperature at or below 0 K, or None (the loader)."""
        bad = [t for t in self.temperatures if not t > 0]
        if bad:
            return "temperatures", f"expected temperatures > 0 K, got {bad[0]:g} K"
        return None


@dataclass(frozen=True)
class TimeTableSpec:
    """A piecewise-linear function of time (constant beyond its end points)."""

    values: list[float] = _f(doc="values of the factor [-] (one value: a constant)",
                             factory=list)
    times: list[float] = _f(doc="times of the values [s] (increasing); empty for a constant",
                            factory=list)
    temperatures: list[float] = _f(doc="older name of `times` (same meaning; give one of the two)",
                                   factory=list)

    def __post_init__(self):
        # one list of times under both names (rom.online reads `temperatures`); two different
        # lists are left as given and reported by rom.fom.setup.amplitude_function
        if not self.times:
            object.__setattr__(self, "times", list(self.temperatures))
        elif not self.temperatures:
            object.__setattr__(self, "temperatures", list(self.times))


#: the laws known by name (``material.law``); any other value names a user's law, ``module:Class``
LAWS = ("elastic", "norton", "chaboche")
_USER_LAW = re.compile(r"^[A-Za-z_][\w]*(\.[A-Za-z_][\w]*)*:[A-Za-z_][\w]*$")


@dataclass(frozen=True)
class MaterialConfig:
    law: str = _f("elastic", doc="constitutive law: elastic, norton, chaboche, or a user's law "
                                 "as module:Class (an importable module; docs/fom.md)")
    E: TableSpec = _f(doc="Young's modulus [Pa], table in temperature", factory=TableSpec)
    nu: TableSpec = _f(doc="Poisson ratio [-]", factory=TableSpec)
    alpha: TableSpec = _f(doc="secant thermal expansion coefficient from T_ref [1/K]",
                          factory=lambda: TableSpec([0.0]))
    T_ref: float = _f(293.15, doc="stress-free reference temperature [K]",
                      range=(0.0, None, True, False))
    K: TableSpec = _f(doc="viscous stress scale [Pa s^(1/n)] (laws: norton, chaboche)",
                      factory=TableSpec)
    n: TableSpec = _f(doc="viscous exponent [-] (laws: norton, chaboche)", factory=TableSpec)
    sigma_y: TableSpec = _f(doc="initial yield stress [Pa] (law: chaboche)",
                            factory=lambda: TableSpec([0.0]))
    Q: TableSpec = _f(doc="saturated isotropic hardening [Pa] (law: chaboche)",
                      factory=lambda: TableSpec([0.0]))
    b: TableSpec = _f(doc="rate of the isotropic hardening [-] (law: chaboche)",
                      factory=lambda: TableSpec([0.0]))
    C1: TableSpec = _f(doc="first kinematic hardening modulus [Pa] (law: chaboche)",
                       factory=lambda: TableSpec([0.0]))
    D1: TableSpec = _f(doc="dynamic recovery of the first back stress [-] (law: chaboche)",
                       factory=lambda: TableSpec([0.0]))
    C2: TableSpec = _f(doc="second kinematic hardening modulus [Pa] (law: chaboche)",
                       factory=lambda: TableSpec([0.0]))
    D2: TableSpec = _f(doc="dynamic recovery of the second back stress [-] (law: chaboche)",
                       factory=lambda: TableSpec([0.0]))
    parameters: dict[str, TableSpec] = _f(
        doc="keyword parameters of a user's law (law: module:Class), each a table in T",
        factory=dict)
    density: float = _f(0.0, doc="mass density [kg/m^3] (centrifugal load)",
                        range=(0.0, None, False, False))
    conductivity: TableSpec = _f(doc="thermal conductivity [W/(m K)] (heat solver)",
                                 factory=TableSpec)

    def _validate(self) -> tuple[str, str] | None:
        """(key, message) of a law that is neither known nor ``module:Class``, or None."""
        if self.law not in LAWS and not _USER_LAW.match(self.law):
            return "law", (f"expected one of {', '.join(map(repr, LAWS))} or a user's law as "
                           f"'module:Class', got {self.law!r}")
        if self.parameters and self.law in LAWS:
            return "parameters", f"parameters are for a user's law (module:Class), not {self.law}"
        return None


@dataclass(frozen=True)
class DirichletSpec:
    group: str = _f(doc="mesh group (node set, cell set or physical group)")
    components: list[Literal["x", "y", "z"]] = _f(doc="constrained components",
                                                  factory=lambda: ["x", "y", "z"])
    value: float = _f(0.0, doc="imposed displacement [m] (times the amplitude)")


@dataclass(frozen=True)
class PressureSpec:
    group: str = _f(doc="surface group (triangle / triangle6 / quad cells)")
    value: float = _f(doc="pressure [Pa] (times the amplitude), positive pushes inward")


@dataclass(frozen=True)
class CentrifugalSpec:
    omega: float = _f(doc="rotation speed [rad/s]")
    axis_point: list[float] = _f(doc="a point of the rotation axis [m]",
                                 factory=lambda: [0.0, 0.0, 0.0])
    axis_direction: list[float] = _f(doc="direction of the rotation axis",
                                     factory=lambda: [0.0, 0.0, 1.0])


@dataclass(frozen=True)
class LoadingConfig:
    dirichlet: list[DirichletSpec] = _f(doc="imposed displacements", factory=list)
    pressure: list[PressureSpec] = _f(doc="surface pressures", factory=list)
    centrifugal: CentrifugalSpec | None = _f(None, doc="rotation (needs material.density)")
    amplitude: TimeTableSpec | None = _f(None, doc="factor of time scaling pressure, imposed "
                                                   "displacements and omega^2 (default 1)")
    period: float | None = _f(None, doc="period [s] of every amplitude table (this one and the "
                                        "temperature amplitudes): a(t) = a(t mod period)",
                              range=(0.0, None, True, False))
    times: TimeGrid = _f(doc="time steps of every loading", factory=TimeGrid)


@dataclass(frozen=True)
class PerturbationSpec:
    seed: int = _f(doc="seed of the random field (same seed, same field)",
                   range=(0, None, False, False))
    amplitude: float = _f(doc="largest absolute value of the perturbation over the mesh "
                              "nodes [K]", range=(0.0, None, False, False))
    length: float = _f(doc="shortest wavelength [m] (the field is smooth below it)",
                       range=(0.0, None, True, False))
    modes: int = _f(32, doc="number of random Fourier modes", range=(1, None, False, False))


@dataclass(frozen=True)
class TemperatureSpec:
    uniform: float | None = _f(None, doc="uniform temperature [K]")
    formula: str | None = _f(None, doc="numpy expression of x, y, z [m] and t [s] giving T [K]")
    file: Path | None = _f(None, doc="meshio file with a nodal temperature field", path="exists")
    field: str = _f("temperature", doc="name of the point field in `file`")
    heat: bool = _f(False, doc="compute T with the steady heat solver (fom.heat)")
    parameters: dict[str, float] = _f(doc="named values used in `formula`, or (heat) values "
                                          "overriding fom.heat.parameters", factory=dict)
    perturbation: PerturbationSpec | None = _f(
        None, doc="smooth random field added to the source field [K]")
    amplitude: TimeTableSpec | None = _f(
        None, doc="factor of time a(t): T = T_base + a(t) (T_source + perturbation - T_base)")
    T_base: float = _f(293.15, doc="temperature where the amplitude is 0 [K] (with amplitude)")

    def _validate(self) -> tuple[str, str] | None:
        """(key, message) of a temperature at or below 0 K or a formula outside the formula
        language (:mod:`rom.formula`), or None (called by the loader, for every temperature
        spec of a case; :func:`rom.fom.setup.temperature_function` checks the fields of the
        other sources and the formula's names)."""
        for key in ("uniform", "T_base"):  # loop over the given absolute temperatures
            value = getattr(self, key)
            if value is not None and not value > 0:
                return key, f"expected a temperature > 0 K, got {value:g} K"
        if self.formula is not None:         # the language here; the names where known
            from ..formula import check_formula
            from ..parallel import UserError
            try:
                check_formula(self.formula, None, "")
            except UserError as exc:
                return "formula", str(exc).removeprefix(": ")
        return None


@dataclass(frozen=True)
class LoadingCase:
    name: str = _f(doc="loading name (stored with the snapshots)")
    temperature: TemperatureSpec = _f(doc="temperature field (exactly one source)",
                                      factory=lambda: TemperatureSpec(uniform=293.15))
    scale: float = _f(1.0, doc="extra factor on the mechanical loads of this loading")


@dataclass(frozen=True)
class NewtonConfig:
    rtol: float = _f(1e-8, doc="relative residual tolerance of the global Newton",
                     range=(0.0, 1.0, True, True))
    atol: float = _f(1e-12, doc="absolute residual tolerance [N]", range=(0.0, None, False, False))
    max_iter: int = _f(25, doc="Newton iterations per step", range=(1, None, False, False))
    forcing: Literal["ew", "fixed"] = _f(
        "ew", doc="KSP tolerance per Newton iteration: 'ew' inexact Newton (Eisenstat-Walker, "
                  "capped by the relative residual), 'fixed' the KSP rtol option")
    eta_max: float = _f(1e-2, doc="largest KSP relative tolerance of the inexact Newton",
                        range=(0.0, 1.0, True, True))
    pc_reuse: bool = _f(True, doc="keep the preconditioner across Newton iterations and "
                                  "steps while it works")
    pc_rebuild_ratio: float = _f(1.5, doc="rebuild the preconditioner when a solve needs more "
                                          "than this factor times the KSP iterations per decade "
                                          "of the last fresh setup",
                                 range=(1.0, None, False, False))
    max_cuts: int = _f(3, doc="times a failing time step is halved (sub-steps, results only at "
                            "the requested times) before the failure is reported",
                       range=(0, None, False, False))
    line_search: int = _f(8, doc="backtracking line search: at most this many halvings of a "
                                 "Newton correction that does not decrease the residual "
                                 "(0: full steps)", range=(0, None, False, False))


@dataclass(frozen=True)
class FixedTemperatureSpec:
    group: str = _f(doc="mesh group")
    value: NumberOrFormula = _f(doc="temperature [K]: a number, or a numpy formula of x, y, z [m] "
                                    "and fom.heat.parameters")


@dataclass(frozen=True)
class ConvectionSpec:
    group: str = _f(doc="surface group")
    h: float = _f(doc="exchange coefficient [W/(m^2 K)]", range=(0.0, None, False, False))
    T_ext: NumberOrFormula = _f(doc="external temperature [K]: a number, or a numpy formula of "
                                    "x, y, z [m] and fom.heat.parameters")


@dataclass(frozen=True)
class HeatConfig:
    fixed: list[FixedTemperatureSpec] = _f(doc="imposed temperatures", factory=list)
    convection: list[ConvectionSpec] = _f(doc="convective exchange", factory=list)
    parameters: dict[str, float] = _f(doc="default values of the named parameters of the "
                                          "formulas (a loading overrides them)", factory=dict)
    petsc_options: dict[str, str] = _f(doc="PETSc options under the prefix 'heat_'", factory=dict)


@dataclass(frozen=True)
class FOMConfig:
    loadings: list[LoadingCase] = _f(doc="loadings run by python -m rom.fom", factory=list)
    petsc_prefix: str = _f("", doc="PETSc options prefix of the mechanical solver")
    petsc_options: dict[str, str] = _f(
        doc="PETSc options (without dash), e.g. ksp_type: cg; the command line wins",
        factory=dict)
    newton: NewtonConfig = _f(doc="global Newton", factory=NewtonConfig)
    partition: Literal["auto", "metis", "rcb"] = _f("auto", doc="element partitioner")
    heat: HeatConfig | None = _f(None, doc="steady heat conduction (temperature.heat: true)")
    write_xdmf: bool = _f(True, doc="also write <name>.<loading>.xdmf for ParaView")
    checkpoint: float | None = _f(
        600.0, doc="publish the store after a loading once this many seconds [s] passed since "
                   "the start or the last checkpoint, at least 10 times the last one's duration "
                   "(0: after every loading; null: only at the end); each costs one copy of the "
                   "store (docs/fom.md)", range=(0.0, None, False, False))

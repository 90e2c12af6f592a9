"""Build solver objects (material, loads, temperature fields) from the case-file sections."""
from __future__ import annotations

import numpy as np

from ..io.mesh import read_mesh
from ..materials import MaterialError, Norton, Table, ThermoElastic
from ..parallel import UserError
from .config import LoadingCase, LoadingConfig, MaterialConfig, TableSpec, TemperatureSpec
from .loads import Centrifugal, Dirichlet, Loads, Pressure, component_indices
from .mesh import FEMesh

__all__ = ["loads_from_config", "material_from_config", "table", "temperature_function"]

_SAFE = {name: getattr(np, name) for name in ("sin", "cos", "tan", "exp", "log", "sqrt", "abs",
                                               "tanh", "arctan2", "hypot", "pi", "minimum",
                                               "maximum", "where", "clip")}


def table(spec: TableSpec | None, name: str) -> Table:
    """A :class:`~rom.materials.Table` from a case-file table (one value: a constant)."""
    if spec is None or not spec.values:
        raise MaterialError(f"material.{name}: no value given")
    temps = spec.temperatures or ([0.0] if len(spec.values) == 1 else [])
    if len(temps) != len(spec.values):
        raise MaterialError(f"material.{name}: {len(spec.values)} values for {len(temps)} "
                            "temperatures")
    return Table(temps, spec.values, f"material.{name}")


def material_from_config(cfg: MaterialConfig):
    """The constitutive law of a ``material:`` section."""
    common = {"E": table(cfg.E, "E"), "nu": table(cfg.nu, "nu"), "alpha": table(cfg.alpha, "alpha"),
                  "T_ref": cfg.T_ref}
    if cfg.law == "elastic":
        return ThermoElastic(**common)
    return Norton(**common, K=table(cfg.K, "K"), n=table(cfg.n, "n"))


def loads_from_config(cfg: LoadingConfig, density: float, scale: float = 1.0) -> Loads:
    """The :class:`~rom.fom.loads.Loads` of a ``loading:`` section (values times ``scale``)."""
    amp = None
    if cfg.amplitude is not None:
        amp = table(cfg.amplitude, "loading.amplitude")
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


def temperature_function(spec: TemperatureSpec, mesh: FEMesh, *, heat=None, where: str = ""):
    """A function t [s] -> nodal temperature (n_nodes,) [K] for a temperature spec.

    ``heat`` is a callable returning the nodal temperature of the steady heat solver
    (used when ``spec.heat``).
    """
    given = [k for k in ("uniform", "formula", "file") if getattr(spec, k) is not None]
    given += ["heat"] if spec.heat else []
    if len(given) != 1:
        raise UserError(f"{where}temperature: give exactly one of uniform, formula, file, heat "
                        f"(got {', '.join(given) or 'none'})")
    n = mesh.n_nodes
    if spec.uniform is not None:
        T = np.full(n, float(spec.uniform))
        return lambda t: T
    if spec.file is not None:
        m = read_mesh(spec.file)
        if spec.field not in m.point_data:
            raise UserError(f"{where}temperature: {spec.file} has no point field {spec.field!r} "
                            f"(fields: {', '.join(m.point_data) or 'none'})")
        T = np.asarray(m.point_data[spec.field], float).reshape(-1)
        if T.shape != (n,):
            raise UserError(f"{where}temperature: field {spec.field!r} has {T.size} values, "
                            f"the mesh has {n} nodes")
        return lambda t: T
    if spec.heat:
        if heat is None:
            raise UserError(f"{where}temperature: heat: true needs a fom.heat section")
        T = heat()
        return lambda t: T
    x, y, z = mesh.points.T
    try:
        code = compile(spec.formula, "<temperature formula>", "eval")
    except SyntaxError as exc:
        raise UserError(f"{where}temperature.formula: {exc.msg}: {spec.formula!r}") from None

    def f(t: float) -> np.ndarray:
        try:
            val = eval(code, {"__builtins__": {}}, {**_SAFE, "x": x, "y": y, "z": z, "t": t})
        except Exception as exc:  # noqa: BLE001 - any error in the user's formula
            raise UserError(f"{where}temperature.formula {spec.formula!r}: "
                            f"{type(exc).__name__}: {exc}") from None
        val = np.broadcast_to(np.asarray(val, float), (n,)).copy()
        if not np.all(np.isfinite(val)):
            raise UserError(f"{where}temperature.formula gives non-finite values at t = {t:g} s")
        return val

    return f


def loading_parameters(lc: LoadingCase) -> dict:
    """Parameters of a loading stored with the snapshots."""
    t = lc.temperature
    return {"scale": lc.scale, "temperature": {k: (str(v) if k == "file" else v) for k, v in
                                               vars(t).items() if v is not None}}

"""Temperature tables, the material interface and material errors."""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np

from ..parallel import UserError

__all__ = ["Material", "MaterialError", "Table", "as_table"]


class MaterialError(UserError, ValueError):
    """Invalid material data, or a local integration that failed (names points and values)."""


@dataclass(frozen=True)
class Table:
    """A piecewise-linear function of temperature, constant beyond its end points.

    Parameters
    ----------
    temperatures : (m,) strictly increasing temperatures [K]
    values : (m,) values at these temperatures (units of the property)
    name : property name, for error messages
    """

    temperatures: np.ndarray
    values: np.ndarray
    name: str = "property"

    def __post_init__(self):
        t = np.atleast_1d(np.asarray(self.temperatures, dtype=float))
        v = np.atleast_1d(np.asarray(self.values, dtype=float))
        if t.ndim != 1 or t.shape != v.shape or len(t) == 0:
            raise MaterialError(f"{self.name}: temperatures and values must be 1-D of the same "
                                f"length, got {t.shape} and {v.shape}")
        if not (np.all(np.isfinite(t)) and np.all(np.isfinite(v))):
            raise MaterialError(f"{self.name}: table has non-finite entries")
        if np.any(np.diff(t) <= 0):
            raise MaterialError(f"{self.name}: temperatures must be strictly increasing, got {t}")
        object.__setattr__(self, "temperatures", t)
        object.__setattr__(self, "values", v)

    def __call__(self, T: np.ndarray | float) -> np.ndarray:
        """Values at temperatures ``T`` (any shape) [K]."""
        return np.interp(np.asarray(T, dtype=float), self.temperatures, self.values)

    def derivative(self, T: np.ndarray | float) -> np.ndarray:
        """d value / d T at ``T`` (slope of the segment; 0 outside the table)."""
        T = np.asarray(T, dtype=float)
        t, v = self.temperatures, self.values
        if len(t) == 1:
            return np.zeros_like(T)
        slopes = np.diff(v) / np.diff(t)
        k = np.clip(np.searchsorted(t, T, side="right") - 1, 0, len(t) - 2)
        inside = (T >= t[0]) & (T <= t[-1])
        return np.where(inside, slopes[k], 0.0)

    def check(self, lo: float | None = None, hi: float | None = None, *,
              lo_open: bool = True, hi_open: bool = True, what: str = "") -> None:
        """Raise :class:`MaterialError` if a value is outside (lo, hi)."""
        v = self.values
        bad = np.zeros(len(v), bool)
        if lo is not None:
            bad |= (v <= lo) if lo_open else (v < lo)
        if hi is not None:
            bad |= (v >= hi) if hi_open else (v > hi)
        if bad.any():
            k = int(np.argmax(bad))
            raise MaterialError(f"{self.name}: value {v[k]:g} at T = {self.temperatures[k]:g} K "
                                f"is not {what}")


def as_table(value, name: str) -> Table:
    """A :class:`Table` from a number, a ``Table``, a ``(temperatures, values)`` pair or a
    mapping ``{"temperatures": [...], "values": [...]}``."""
    if isinstance(value, Table):
        return Table(value.temperatures, value.values, name)
    if isinstance(value, dict):
        unknown = set(value) - {"temperatures", "values"}
        if unknown or "values" not in value:
            raise MaterialError(f"{name}: a table needs keys 'temperatures' and 'values', "
                                f"got {sorted(value)}")
        vals = np.atleast_1d(np.asarray(value["values"], dtype=float))
        temps = value.get("temperatures", np.zeros(1) if len(vals) == 1 else None)
        if temps is None:
            raise MaterialError(f"{name}: 'temperatures' missing")
        return Table(temps, vals, name)
    if isinstance(value, (tuple, list)) and len(value) == 2 and np.ndim(value[0]) == 1:
        return Table(value[0], value[1], name)
    try:
        x = float(value)
    except (TypeError, ValueError):
        raise MaterialError(f"{name}: expected a number or a table, got {value!r}") from None
    return Table(np.zeros(1), np.array([x]), name)


@runtime_checkable
class Material(Protocol):
    """What the FE solver and the reduced model need from a constitutive law.

    Arrays are over integration points, leading dimension ``n`` (any shape ``(...)``
    is accepted by the laws in this package as long as it is consistent).
    Stress/strain follow :mod:`rom.materials.tensors` (Voigt, engineering shears).

    Attributes
    ----------
    n_state : number of internal variables per point
    state_names : name -> (slice into the state columns, units); the reduced model needs a
        ``p`` (cumulated viscoplastic strain) for its indicator and scales the
        internal-variable basis per unit
    symmetric_tangent : optional, default True; False makes the full-order solver use GMRES
        (Chaboche's tangent, with recovering back stresses)

    A law of the user's is named in a case file as ``material.law: module:Class`` and
    checked against this protocol by :func:`rom.materials.user.check_law` (docs/fom.md,
    "Your own law").
    """

    n_state: int
    state_names: Mapping[str, tuple[slice, str]]

    def initial_state(self, n: int) -> np.ndarray:
        """Internal variables (n, n_state) of a virgin material."""

    def integrate(self, strain_old: np.ndarray, strain_new: np.ndarray, state_old: np.ndarray,
                  temperature: np.ndarray, dt: float
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """One time step: (stress (n, 6) [Pa], state_new (n, n_state), tangent (n, 6, 6) [Pa]).

        Laws whose class sets ``split_tangent = True`` also accept the keyword
        ``split_tangent=True`` and then return the tangent as a
        :class:`~rom.materials.tensors.IsotropicTangent` (the reduced Newton uses it).
        Laws whose class sets ``step_work = True`` also accept ``work=dict``, a scratch
        the caller keeps over its calls (the iterations of a Newton, and the next steps):
        the law reuses what does not change between calls with the same ``state_old`` and
        ``temperature`` arrays and ``dt``, and may start its own iterations from the last
        call's answer; the results are those without it to the law's tolerances."""

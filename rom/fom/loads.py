"""Boundary conditions and loads of the mechanical problem (plain data + vectorized evaluation)."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..parallel import UserError
from . import kernels
from .elements import FACETS
from .mesh import FEMesh

__all__ = ["Centrifugal", "Dirichlet", "LoadError", "Loads", "Pressure", "component_indices"]

_COMP = {"x": 0, "y": 1, "z": 2, 0: 0, 1: 1, 2: 2}


class LoadError(UserError, ValueError):
    """An invalid boundary condition or load (names it)."""


def component_indices(components, where: str = "dirichlet") -> tuple[int, ...]:
    """Components ``"x"``, ``"y"``, ``"z"`` (or 0, 1, 2; ``"all"``) -> sorted indices."""
    if components in ("all", "xyz", None):
        return (0, 1, 2)
    if isinstance(components, (str, int)):
        components = [components] if not (isinstance(components, str) and len(components) > 1) \
            else list(components)
    try:
        out = sorted({_COMP[c] for c in components})
    except (KeyError, TypeError):
        raise LoadError(f"{where}: components must be among x, y, z (or 0, 1, 2), "
                        f"got {components!r}") from None
    if not out:
        raise LoadError(f"{where}: no component given")
    return tuple(out)


@dataclass(frozen=True)
class Dirichlet:
    """Imposed displacement ``value`` [m] (times the load amplitude) on components of a group."""

    group: str
    components: tuple[int, ...] = (0, 1, 2)
    value: float = 0.0


@dataclass(frozen=True)
class Pressure:
    """Pressure ``value`` [Pa] (times the load amplitude) on a surface group, pushing inward."""

    group: str
    value: float


@dataclass(frozen=True)
class Centrifugal:
    """Centrifugal body force rho omega^2 r_perp of a rotation about an axis.

    Attributes
    ----------
    omega : rotation speed [rad/s] (the force scales with amplitude * omega^2)
    axis_point : (3,) a point of the axis [m]
    axis_direction : (3,) direction of the axis (normalized here)
    """

    omega: float
    axis_point: tuple[float, float, float] = (0.0, 0.0, 0.0)
    axis_direction: tuple[float, float, float] = (0.0, 0.0, 1.0)

    def force_density(self, x: np.ndarray, density: float) -> np.ndarray:
        """Body force (n, 3) [N/m^3] at points x (n, 3) [m]."""
        e = np.asarray(self.axis_direction, float)
        norm = np.linalg.norm(e)
        if norm == 0:
            raise LoadError("centrifugal: axis_direction must be a non-zero vector")
        e = e / norm
        r = x - np.asarray(self.axis_point, float)
        r_perp = r - (r @ e)[:, None] * e
        return density * self.omega**2 * r_perp


@dataclass
class Loads:
    """All mechanical loads of a problem.

    Attributes
    ----------
    dirichlet : imposed displacements (at least enough to remove rigid-body motions)
    pressure : surface pressures
    centrifugal : rotation, or None
    density : mass density for body forces [kg/m^3]
    amplitude : factor of time (a callable t [s] -> float) scaling pressure, imposed
        displacement values and the centrifugal force; default 1
    """

    dirichlet: list[Dirichlet] = field(default_factory=list)
    pressure: list[Pressure] = field(default_factory=list)
    centrifugal: Centrifugal | None = None
    density: float = 0.0
    amplitude: object = None

    def factor(self, t: float) -> float:
        return 1.0 if self.amplitude is None else float(self.amplitude(t))

    def check(self, mesh: FEMesh) -> None:
        """Every group exists (else :class:`~rom.fom.mesh.GroupError` naming it)."""
        for d in self.dirichlet:
            mesh.group(d.group, what="dirichlet group")
        for p in self.pressure:
            mesh.surface(p.group, what="pressure group")
        if self.centrifugal is not None and self.density <= 0:
            raise LoadError("centrifugal load needs material.density > 0 "
                            f"(got {self.density:g} kg/m^3)")

    def pressure_forces(self, mesh: FEMesh, node_part: np.ndarray, rank: int
                        ) -> tuple[np.ndarray, np.ndarray]:
        """Nodal forces of the pressures for the facets this rank assembles (unit amplitude).

        A facet is assembled by the owner of its first node. Returns (nodes (m,), forces
        (m, 3) [N]), mesh node numbering, possibly repeated nodes.
        """
        nodes, forces = [np.zeros(0, np.int64)], [np.zeros((0, 3))]
        for p in self.pressure:
            for ftype, facets in mesh.surface(p.group, what="pressure group").items():
                mine = facets[node_part[facets[:, 0]] == rank]
                f = kernels.pressure_forces(mesh.points[mine], FACETS[ftype], p.value)
                nodes.append(mine.ravel())
                forces.append(f.reshape(-1, 3))
        return np.concatenate(nodes), np.concatenate(forces)

"""Full-order model: FE kernels, mesh partition, PETSc assembly and solve, time stepping.

Light modules (elements, kernels, mesh, discretization, partition, loads, config)
import without PETSc; :mod:`rom.fom.solver` (and what uses it) imports petsc4py.
``python -m rom.fom case.yaml`` runs a case (docs/fom.md).
"""
from __future__ import annotations

__all__ = [
    "Centrifugal",
    "ConvergenceError",
    "Dirichlet",
    "ElementSet",
    "FEMesh",
    "Loads",
    "MechState",
    "MechanicalSolver",
    "NewtonOptions",
    "Pressure",
]

from .discretization import ElementSet
from .loads import Centrifugal, Dirichlet, Loads, Pressure
from .mesh import FEMesh


def __getattr__(name: str):
    if name in ("MechanicalSolver", "MechState", "NewtonOptions", "ConvergenceError"):
        from . import solver
        return getattr(solver, name)
    raise AttributeError(f"module 'rom.fom' has no attribute {name!r}")

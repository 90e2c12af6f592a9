"""Constitutive laws vectorized over integration points (shared by rom.fom and the reduced model).

Every law has ``integrate(strain_old, strain_new, state_old, temperature, dt) ->
(stress, state_new, tangent)`` over arrays of points; conventions in
:mod:`rom.materials.tensors` (Voigt order xx, yy, zz, xy, yz, xz; engineering
shear strains; SI units). See docs/fom.md.
"""
from __future__ import annotations

from .base import Material, MaterialError, Table, as_table
from .chaboche import Chaboche
from .driver import drive_point
from .elastic import ThermoElastic, isotropic_stiffness
from .norton import Norton
from .tensors import VOIGT_PAIRS, von_mises

__all__ = [
    "VOIGT_PAIRS",
    "Chaboche",
    "Material",
    "MaterialError",
    "Norton",
    "Table",
    "ThermoElastic",
    "as_table",
    "drive_point",
    "isotropic_stiffness",
    "make_material",
    "von_mises",
]


def make_material(kind: str, **params) -> Material:
    """A law by name: ``"elastic"`` (:class:`ThermoElastic`), ``"norton"`` (:class:`Norton`)
    or ``"chaboche"`` (:class:`Chaboche`)."""
    if kind == "elastic":
        return ThermoElastic(**params)
    if kind == "norton":
        return Norton(**params)
    if kind == "chaboche":
        return Chaboche(**params)
    raise MaterialError(f"unknown material law {kind!r} (known: 'elastic', 'norton', "
                        "'chaboche')")

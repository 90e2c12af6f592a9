"""Hyper-reduction: empirical cubature (ECM), EIM / DEIM / Q-DEIM, Gappy-POD, ECM integrands.

Every function works on numpy arrays plus an optional communicator (``comm=None`` is
serial). Distributed data are this rank's contiguous block of *points* in global
order: columns of an ECM integrand matrix, rows of a basis. Returned point indices are
global and identical on every rank, whatever the number of ranks. See docs/hyper.md.
"""
from __future__ import annotations

from .deim import EIMResult, Interpolation, deim, eim, interpolation, qdeim
from .ecm import TrueIntegrands, compress_rows, ecm, quadrature_error
from .gappy import GappyPOD, GappyWarning, gappy
from .integrand import (
    CompressedIntegrand,
    compress_integrand,
    ecm_fields,
    integrals,
    integrand_columns,
    integrand_correlations,
    integrand_matrix,
    integrand_rows,
    point_dofs,
    strains_from_B,
)

__all__ = [
    "CompressedIntegrand",
    "EIMResult",
    "GappyPOD",
    "GappyWarning",
    "Interpolation",
    "TrueIntegrands",
    "compress_integrand",
    "compress_rows",
    "deim",
    "ecm",
    "ecm_fields",
    "eim",
    "gappy",
    "integrals",
    "integrand_columns",
    "integrand_correlations",
    "integrand_matrix",
    "integrand_rows",
    "interpolation",
    "point_dofs",
    "qdeim",
    "quadrature_error",
    "strains_from_B",
]

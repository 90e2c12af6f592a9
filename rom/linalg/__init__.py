"""Distributed linear algebra on row blocks: POD, incremental SVD, orthonormalization.

Row-block convention: each rank holds a contiguous block of global rows as a numpy
array ``(n_local, m)``; the communicator is passed explicitly (``None`` = serial).
"""
from __future__ import annotations

from .distributed import apply_product, as_product, gather_rows, global_offsets, gram
from .isvd import IncrementalSVD
from .orth import TSQR, cholqr, gram_schmidt, tsqr
from .pod import PODResult, pod

__all__ = [
    "TSQR",
    "IncrementalSVD",
    "PODResult",
    "apply_product",
    "as_product",
    "cholqr",
    "gather_rows",
    "global_offsets",
    "gram",
    "gram_schmidt",
    "pod",
    "tsqr",
]

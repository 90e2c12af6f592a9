"""rom: reduced-order modeling for parametric nonlinear structural mechanics.

Public names (see docs/guide.md):

- :func:`rom.pod` -- distributed POD (method of snapshots, TSQR, randomized)
- :class:`rom.IncrementalSVD` -- Brand's incremental SVD (used for enrichment)
- :func:`rom.gram_schmidt` -- re-orthonormalization with an optional product
- :class:`rom.SnapshotStore` -- HDF5 snapshot store, any rank count
- :func:`rom.load_case` -- validated YAML case files
- :mod:`rom.hyper` -- ECM, DEIM / Q-DEIM, Gappy-POD
- :func:`rom.load` -- load a reduced model; ``ReducedModel.solve`` (error indicator, enrichment)

Nothing heavy (matplotlib, petsc4py) is imported here.
"""
from __future__ import annotations

__version__ = "0.1.0"

from .linalg import IncrementalSVD, PODResult, gram_schmidt, pod  # noqa: E402
from .io.snapshots import SnapshotStore  # noqa: E402
from .config import CaseError, load_case  # noqa: E402
from . import hyper  # noqa: E402
from .online import ReducedModel, load  # noqa: E402

__all__ = [
    "__version__", "pod", "PODResult", "IncrementalSVD", "gram_schmidt",
    "SnapshotStore", "load_case", "CaseError", "hyper", "load", "ReducedModel",
]

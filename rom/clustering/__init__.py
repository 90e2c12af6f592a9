"""Local reduced bases: angle-based dissimilarities, k-medoids, one POD per cluster,
online selection and an a priori efficiency criterion (Daniel, Casenave, Akkari,
Ryckelynck). See docs/local-bases.md.

Modules: :mod:`.dissimilarity` (from the Gram matrix), :mod:`.kmedoids`,
:mod:`.local_bases` (:func:`build_local_bases`, :class:`LocalBases`), :mod:`.selection`
(:class:`LocalBasisSelector`), :mod:`.criterion`, :mod:`.report`
(:func:`format_summary`, :func:`plot_local_bases`), :mod:`.synthetic` (a test problem).
"""
from __future__ import annotations

from .criterion import (
                        CriterionResult,
                        OnlineCost,
                        efficiency_criterion,
                        measured_speedup,
                        modes_needed,
                        pod_size,
                        scan_k,
)
from .dissimilarity import (
                        dissimilarity_matrix,
                        euclidean_dissimilarity,
                        group_indices,
                        sine_dissimilarity,
                        snapshot_gram,
                        subspace_dissimilarity,
)
from .io import read_local_bases_file, write_local_bases_file
from .kmedoids import KMedoidsResult, kmedoids, kmedoids_plusplus
from .local_bases import LocalBases, build_local_bases, projection_errors
from .report import format_summary, plot_local_bases
from .selection import LocalBasisSelector
from .synthetic import SyntheticRegimes, synthetic_regimes

__all__ = [
                        "CriterionResult",
                        "KMedoidsResult",
                        "LocalBases",
                        "LocalBasisSelector",
                        "OnlineCost",
                        "SyntheticRegimes",
                        "build_local_bases",
                        "dissimilarity_matrix",
                        "efficiency_criterion",
                        "euclidean_dissimilarity",
                        "format_summary",
                        "group_indices",
                        "kmedoids",
                        "kmedoids_plusplus",
                        "measured_speedup",
                        "modes_needed",
                        "plot_local_bases",
                        "pod_size",
                        "projection_errors",
                        "read_local_bases_file",
                        "scan_k",
                        "sine_dissimilarity",
                        "snapshot_gram",
                        "subspace_dissimilarity",
                        "synthetic_regimes",
                        "write_local_bases_file",
]

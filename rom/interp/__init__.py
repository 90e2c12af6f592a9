"""Nonintrusive operator interpolation (matrix EIM) and a round-off-stable RB error bound.

- :func:`matrix_eim` / :func:`vector_eim`: greedy EIM over the entries of assembled
  parametric sparse matrices / vectors (row blocks + communicator; rank-count independent)
- :func:`build_rb`: reduced-basis pipeline for ``A(mu) u = f(mu)`` (estimator-driven greedy)
- :class:`RBModel` ``.solve(mu)`` -> :class:`RBResult` (``.field``, ``.error_bound``)
- :class:`ResidualEstimator` / :class:`OnlineEstimator`: classical and stable dual norms
- :func:`save` / :func:`load`: the HDF5 artifact (group ``interp``)
- :mod:`rom.interp.problems`: parametric heat conduction test problems (scipy.sparse)

See docs/interp.md. petsc4py is never imported here (PETSc matrices are converted lazily).
"""
from __future__ import annotations

from .artifact import load, save
from .estimator import OnlineEstimator, ResidualEstimator, sampled_coercivity
from .meim import MagicCost, MatrixEIM, VectorEIM, matrix_eim, vector_eim
from .rb import LinearProblem, RBModel, RBResult, build_rb

__all__ = [
           "LinearProblem",
           "MagicCost",
           "MatrixEIM",
           "OnlineEstimator",
           "RBModel",
           "RBResult",
           "ResidualEstimator",
           "VectorEIM",
           "build_rb",
           "load",
           "matrix_eim",
           "sampled_coercivity",
           "save",
           "vector_eim",
]

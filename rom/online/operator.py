"""The reduced operator: everything a reduced time step needs, replicated on every rank.

Its size does not depend on the mesh: q reduced points (ECM and imposed), n displacement
modes, k p modes. The reduced Newton (:func:`rom.online.solve.reduced_step`), the
indicator, the training check and the cross-validation folds work on this object only;
the full-size bases (:class:`rom.online.model.FullBases`) serve fields on the mesh and
enrichment.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from functools import cached_property

import numpy as np

from ..hyper import GappyPOD

__all__ = ["ReducedOperator"]


@dataclass(eq=False)
class ReducedOperator:
    """The reduced model at its reduced points (replicated, O(q n + q k)).

    Attributes
    ----------
    points : (q,) global integration points (ECM, then imposed)
    weights : (q,) reduced weights [m^3] (0 at imposed points)
    imposed : (k_i,) the indicator's Q-DEIM points
    eps : (q, 6, n) Voigt strains of the displacement modes at the points
    nodes : (q, n_en) element nodes of the points; ``shape`` (q, n_en) their shape values;
        ``node_coords`` (q, n_en, 3) [m] (temperature interpolation)
    f_red : (n,) reduced external forces of unit amplitude [N]
    psi_p_M : (q, k) the p basis at the points (Gappy-POD of the indicator)
    law : the material law (``rom.materials``)
    p_column : column of p in the internal variables
    dual_floor : floor of the indicator's denominator
    newton_rtol, newton_max_iter : reduced Newton settings
    load_factor : ``t -> a(t)`` factor of the mechanical loads (None: 1)
    """

    points: np.ndarray
    weights: np.ndarray
    imposed: np.ndarray
    eps: np.ndarray
    nodes: np.ndarray
    shape: np.ndarray
    node_coords: np.ndarray
    f_red: np.ndarray
    psi_p_M: np.ndarray
    law: object
    p_column: int
    dual_floor: float
    newton_rtol: float
    newton_max_iter: int
    load_factor: object = None

    #: the arrays of the operator (saved under ``reduced/``, except ``psi_p_M``)
    ARRAYS = ("points", "weights", "imposed", "eps", "nodes", "shape", "node_coords", "f_red")

    @property
    def n_modes(self) -> int:
        return int(self.eps.shape[2])

    @property
    def n_points(self) -> int:
        return int(self.points.size)

    def amplitude(self, t: float) -> float:
        """Factor of the mechanical loads at time ``t``."""
        return 1.0 if self.load_factor is None else float(self.load_factor(t))

    def temperature(self, T_nodes: np.ndarray) -> np.ndarray:
        """Temperature (q,) at the points from the values at their element nodes (q, n_en)."""
        return np.einsum("qa,qa->q", self.shape, T_nodes)

    # ------------------------------------------------- derived arrays (cached, not saved)
    @cached_property
    def E(self) -> np.ndarray:
        """The mode strains as a (6 q, n) matrix (a view)."""
        return self.eps.reshape(-1, self.n_modes)

    @cached_property
    def traces(self) -> np.ndarray:
        """``1^T E_g`` (q, n): the volumetric strain of every mode at every point."""
        return self.eps[:, :3, :].sum(axis=1)

    @cached_property
    def eps32(self) -> np.ndarray:
        """The mode strains in single precision (the Newton's tangent)."""
        return self.eps.astype(np.float32)

    @cached_property
    def traces32(self) -> np.ndarray:
        return self.traces.astype(np.float32)

    @cached_property
    def abs_E(self) -> np.ndarray:
        """``|E|`` (6 q, n): the scale of the internal forces (Newton's reference)."""
        return np.abs(self.E)

    @cached_property
    def gappy(self) -> GappyPOD:
        """The Gappy-POD fit of p at the points (the indicator), factored once."""
        return GappyPOD(self.psi_p_M)

    def prepare(self) -> ReducedOperator:
        """Compute the cached arrays now (tens of ms on a thousand points) instead of at
        the first step of a solve. Returns self."""
        for name in ("gappy", "abs_E", "eps32", "traces32"):
            getattr(self, name)
        return self

    # ------------------------------------------------- related operators
    def fold(self, R: np.ndarray, Rp: np.ndarray) -> ReducedOperator:
        """The operator of the displacement basis ``Phi R`` and p basis ``Psi_p Rp`` on the
        same points and weights (a cross-validation fold, :mod:`rom.online.crossval`)."""
        return replace(self, eps=np.einsum("qcn,nr->qcr", self.eps, R),
                       f_red=np.asarray(R).T @ self.f_red, psi_p_M=self.psi_p_M @ Rp)

    def shares_cache_with(self, other: ReducedOperator) -> None:
        """Take ``other``'s cached arrays (same arrays: a copy of the model)."""
        for name in ("E", "traces", "eps32", "traces32", "abs_E", "gappy"):
            if name in other.__dict__:
                self.__dict__[name] = other.__dict__[name]

    def __copy__(self) -> ReducedOperator:
        new = replace(self)
        new.shares_cache_with(self)
        return new

"""A set of elements (all, or one rank's part) with precomputed geometry, and its evaluation.

:class:`ElementSet` turns nodal displacements into strains at every integration
point, calls the material law once for all points, and returns element internal
forces and tangent matrices. It is used by the serial helpers, the PETSc solver
and (later) the reduced model at its few elements.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..materials.base import Material
from . import kernels
from .elements import ElementType
from .mesh import FEMesh

__all__ = ["ElementSet", "LocalBlock"]


@dataclass
class LocalBlock:
    """Elements of one type: connectivity, geometry and where their points go.

    Attributes
    ----------
    etype : reference element
    cells : (n_el, n_nodes) global node numbers
    ids : (n_el,) global element numbers
    dNdx : (n_el, n_qp, n_nodes, 3) [1/m]
    wdetJ : (n_el, n_qp) [m^3]
    qp : (n_el * n_qp,) global integration-point numbers (element-major)
    rows : slice of this block's points in the set's point arrays
    """

    etype: ElementType
    cells: np.ndarray
    ids: np.ndarray
    dNdx: np.ndarray
    wdetJ: np.ndarray
    qp: np.ndarray
    rows: slice

    @property
    def dofs(self) -> np.ndarray:
        """(n_el, 3 n_nodes) global dofs in the mesh's node numbering."""
        return (3 * self.cells[:, :, None] + np.arange(3)).reshape(len(self.cells), -1)


class ElementSet:
    """Elements of a mesh (``element_ids`` or all) with geometry at their integration points.

    Integration points are numbered globally block by block, element-major
    (``point = block offset + (element - first element of block) * n_qp + q``),
    independent of any partition. Local point arrays follow the order of the
    blocks then of ``element_ids`` within each block.

    Parameters
    ----------
    mesh : the mesh
    element_ids : global element numbers of this set (default: every element)
    """

    def __init__(self, mesh: FEMesh, element_ids: np.ndarray | None = None):
        self.mesh = mesh
        self.blocks: list[LocalBlock] = []
        want = None if element_ids is None else np.sort(np.asarray(element_ids, np.int64))
        qp_offset, row = 0, 0
        for b in mesh.blocks:
            first = int(b.ids[0]) if len(b.ids) else 0
            sel = np.arange(len(b.ids)) if want is None else \
                want[(want >= first) & (want < first + len(b.ids))] - first
            cells = b.cells[sel]
            nq = b.etype.n_qp
            dNdx, wdetJ = kernels.geometry(mesh.points[cells], b.etype, ids=b.ids[sel])
            qp = (qp_offset + sel[:, None] * nq + np.arange(nq)).ravel()
            self.blocks.append(LocalBlock(b.etype, cells, b.ids[sel], dNdx, wdetJ, qp,
                                          slice(row, row + len(qp))))
            qp_offset += len(b.ids) * nq
            row += len(qp)
        self.n_qp = row
        self.n_qp_global = qp_offset

    @property
    def qp(self) -> np.ndarray:
        """(n_qp,) global numbers of the local integration points."""
        return np.concatenate([b.qp for b in self.blocks])

    @property
    def nodes(self) -> np.ndarray:
        """Sorted global numbers of the nodes touched by the set."""
        return np.unique(np.concatenate([b.cells.ravel() for b in self.blocks]))

    def weights(self) -> np.ndarray:
        """(n_qp,) integration weights times det J [m^3]."""
        return np.concatenate([b.wdetJ.ravel() for b in self.blocks])

    def at_points(self, nodal: np.ndarray) -> np.ndarray:
        """Interpolate nodal values (n_nodes, ...) (mesh numbering) to points (n_qp, ...)."""
        nodal = np.asarray(nodal, float)
        return np.concatenate([kernels.interpolate(b.etype.N, nodal[b.cells]).reshape(
            (-1,) + nodal.shape[1:]) for b in self.blocks])

    def coordinates(self) -> np.ndarray:
        """(n_qp, 3) coordinates of the integration points [m]."""
        return self.at_points(self.mesh.points)

    def strains(self, u: np.ndarray) -> np.ndarray:
        """Voigt strains (n_qp, 6) of nodal displacements u (n_nodes, 3) [m]."""
        return np.concatenate([kernels.strains(b.dNdx, u[b.cells]).reshape(-1, 6)
                               for b in self.blocks])

    def strains_many(self, U: np.ndarray) -> np.ndarray:
        """Voigt strains (k, n_qp, 6) of k nodal displacement fields U (3 n_nodes, k) [m]
        (dof = 3 node + component, e.g. reduced-basis modes): :meth:`strains` of every
        column, in one batched product per block."""
        U = np.asarray(U, float).reshape(-1, 3, np.shape(U)[-1])
        return np.concatenate([kernels.strains_many(b.dNdx, U[b.cells]).reshape(
            U.shape[-1], -1, 6) for b in self.blocks], axis=1)

    def forces(self, stress: np.ndarray) -> list[np.ndarray]:
        """Element internal forces per block, [(n_el, 3 n_nodes)] [N], from stresses (n_qp, 6)."""
        return [kernels.internal_forces(b.dNdx, b.wdetJ,
                                        stress[b.rows].reshape(b.wdetJ.shape + (6,)))
                for b in self.blocks]

    def tangents(self, D: np.ndarray) -> list[np.ndarray]:
        """Element tangent matrices per block, [(n_el, 3 n_nodes, 3 n_nodes)] [N/m]."""
        return [kernels.stiffness(b.dNdx, b.wdetJ, D[b.rows].reshape(b.wdetJ.shape + (6, 6)))
                for b in self.blocks]

    def body_forces(self, b_qp: np.ndarray) -> list[np.ndarray]:
        """Element forces of body forces b (n_qp, 3) [N/m^3]: [(n_el, 3 n_nodes)] [N]."""
        return [kernels.body_forces(b.etype, b.wdetJ, b_qp[b.rows].reshape(
            b.wdetJ.shape + (3,))).reshape(len(b.cells), -1) for b in self.blocks]

    def evaluate(self, material: Material, u: np.ndarray, strain_old: np.ndarray,
                 state_old: np.ndarray, temperature: np.ndarray, dt: float, *,
                 tangent: bool = True) -> dict:
        """Integrate the law at every point and build element forces (and tangents).

        Parameters
        ----------
        material : constitutive law
        u : (n_nodes, 3) nodal displacements, mesh numbering [m] (only the set's nodes are read)
        strain_old, state_old : (n_qp, 6), (n_qp, n_state) at the start of the step
        temperature : (n_qp,) temperature at the end of the step [K]
        dt : time step [s]

        Returns
        -------
        dict with ``strain`` (n_qp, 6), ``stress`` (n_qp, 6) [Pa], ``state`` (n_qp, n_state),
        ``fe`` (list per block of (n_el, 3 n_nodes)) [N] and, if ``tangent``, ``Ke``
        (list per block of (n_el, 3 n_nodes, 3 n_nodes)) [N/m]
        """
        eps = self.strains(u)
        stress, state, D = material.integrate(strain_old, eps, state_old, temperature, dt)
        out = {"strain": eps, "stress": stress, "state": state, "fe": self.forces(stress)}
        if tangent:
            out["Ke"] = self.tangents(D)
        return out

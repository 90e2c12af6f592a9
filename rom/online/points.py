"""Finite-element data at integration points from distributed displacement modes.

Integration points use the global numbering of :class:`rom.fom.discretization.ElementSet`
(block by block, element-major). :func:`point_data` costs O(number of points) (the modes
at the points' element nodes are fetched from their owners); :func:`mode_strains` is
O(N n / P): the strains of the modes at this rank's points, offline and for enrichment.
"""
from __future__ import annotations

import numpy as np

from ..fom import kernels
from ..fom.discretization import ElementSet
from ..fom.mesh import FEMesh
from ..linalg.rowblocks import RowBlocks, entity_rows, fetch_rows

__all__ = ["mode_strains", "point_data", "point_nodes"]


def _locate(mesh: FEMesh, points: np.ndarray):
    """Yield (block, mask into points, element index in block, local qp) per block."""
    off = 0
    for b in mesh.blocks:  # loop over element blocks (types)
        nq = b.etype.n_qp
        n = len(b.ids) * nq
        sel = (points >= off) & (points < off + n)
        loc = points[sel] - off
        yield b, sel, loc // nq, loc % nq
        off += n
    if np.any(points >= off) or np.any(points < 0):
        raise ValueError(f"integration point indices must be in [0, {off}), got "
                         f"{points.min()}..{points.max()}")


def _strains(es: ElementSet, nodes: np.ndarray, U: np.ndarray) -> np.ndarray:
    """Strains (n, es.n_qp, 6) of the modes whose rows at the sorted global ``nodes`` are
    ``U`` (len(nodes), 3, n)."""
    n = U.shape[-1]
    out = np.empty((n, es.n_qp, 6))
    for b in es.blocks:  # loop over element blocks
        out[:, b.rows] = kernels.strains_many(b.dNdx, U[np.searchsorted(nodes, b.cells)]
                                              ).reshape(n, -1, 6)
    return out


def point_data(mesh: FEMesh, points: np.ndarray, phi: RowBlocks | np.ndarray) -> dict:
    """Data of the reduced model at global integration points (collective over
    ``phi.comm`` when ``phi`` is distributed: the rows of the points' element nodes are
    fetched, identical on every rank).

    Parameters
    ----------
    mesh : the mesh
    points : (q,) global integration-point indices
    phi : (3 n_nodes, n) displacement modes [m], dof = 3 node + component, distributed
        (:class:`RowBlocks`) or whole

    Returns
    -------
    dict with ``eps`` (q, 6, n) Voigt strains of the modes (engineering shear) [1],
    ``weights_fe`` (q,) full-order weights [m^3], ``nodes`` (q, k) element nodes,
    ``shape`` (q, k) shape-function values (zero-padded for mixed meshes),
    ``node_coords`` (q, k, 3) [m]
    """
    points = np.asarray(points, np.int64)
    nodes, shape, elems = point_nodes(mesh, points)
    es = ElementSet(mesh, np.unique(elems))
    touched = es.nodes
    dofs = entity_rows(touched, 3)
    U = phi.rows(dofs) if isinstance(phi, RowBlocks) else np.asarray(phi)[dofs]
    U = U.reshape(len(touched), 3, -1)
    pos = np.searchsorted(es.qp, points)
    eps = np.moveaxis(_strains(es, touched, U)[:, pos], 0, -1)          # (q, 6, n)
    return {"eps": np.ascontiguousarray(eps), "weights_fe": es.weights()[pos],
            "nodes": nodes, "shape": shape, "node_coords": mesh.points[nodes]}


def point_nodes(mesh: FEMesh, points: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Element nodes (q, k), shape-function values (q, k) (zero-padded for mixed meshes)
    and global element numbers (q,) of the global integration points ``points`` (q,): a
    nodal field ``f`` at the points is ``(shape * f[nodes]).sum(-1)``."""
    points = np.asarray(points, np.int64)
    q, k = len(points), max(b.etype.n_nodes for b in mesh.blocks)
    nodes, shape = np.zeros((q, k), np.int64), np.zeros((q, k))
    elems = np.zeros(q, np.int64)
    for b, sel, el, lq in _locate(mesh, points):
        nn = b.etype.n_nodes
        nodes[sel, :nn] = b.cells[el]
        shape[sel, :nn] = b.etype.N[lq]
        elems[sel] = b.ids[el]
    return nodes, shape, elems


def mode_strains(es: ElementSet, phi: RowBlocks) -> np.ndarray:
    """Strains (n_modes, es.n_qp, 6) of the distributed modes at the points of ``es`` (this
    rank's elements): the rows of the elements' nodes are fetched from their owners (one
    ``Alltoallv``; collective over ``phi.comm``)."""
    nodes = es.nodes
    n = phi.n_cols
    U = fetch_rows(phi.local.reshape(-1, 3, n), phi.offsets // 3, nodes, phi.comm)
    return _strains(es, nodes, U)

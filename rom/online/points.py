"""Finite-element data at a few integration points (the reduced points), from the mesh.

Integration points use the global numbering of :class:`rom.fom.discretization.ElementSet`
(block by block, element-major). Everything here costs O(number of points), except
:func:`mode_strains_all`, which is O(N) and only used offline and for enrichment.
"""
from __future__ import annotations

import numpy as np

from ..fom.discretization import ElementSet
from ..fom.mesh import FEMesh

__all__ = ["mode_strains_all", "point_data"]


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


def point_data(mesh: FEMesh, points: np.ndarray, modes: np.ndarray) -> dict:
    """Data of the reduced model at global integration points.

    Parameters
    ----------
    mesh : the mesh
    points : (q,) global integration-point indices
    modes : (3 n_nodes, n) displacement modes [m], dof = 3 node + component

    Returns
    -------
    dict with ``eps`` (q, 6, n) Voigt strains of the modes (engineering shear) [1],
    ``weights_fe`` (q,) full-order weights [m^3], ``nodes`` (q, k) element nodes,
    ``shape`` (q, k) shape-function values (zero-padded for mixed meshes),
    ``node_coords`` (q, k, 3) [m]
    """
    points = np.asarray(points, np.int64)
    q, k = len(points), max(b.etype.n_nodes for b in mesh.blocks)
    nodes, shape = np.zeros((q, k), np.int64), np.zeros((q, k))
    elems = []
    for b, sel, el, lq in _locate(mesh, points):
        nn = b.etype.n_nodes
        nodes[sel, :nn] = b.cells[el]
        shape[sel, :nn] = b.etype.N[lq]
        elems.append(b.ids[el])
    es = ElementSet(mesh, np.unique(np.concatenate(elems)))
    pos = np.searchsorted(es.qp, points)
    eps = np.moveaxis(es.strains_many(modes)[:, pos], 0, -1)       # (q, 6, n)
    return {"eps": np.ascontiguousarray(eps), "weights_fe": es.weights()[pos],
            "nodes": nodes, "shape": shape, "node_coords": mesh.points[nodes]}


def mode_strains_all(elements: ElementSet, modes: np.ndarray) -> np.ndarray:
    """Strains of the modes at every point, (n_modes, n_qp, 6) (ECM integrand layout)."""
    return elements.strains_many(modes)

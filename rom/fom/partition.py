"""Element partition over ranks and the contiguous dof numbering that follows from it.

Elements are split with METIS (``pymetis``, dual graph, faces shared) when it is
installed, else with recursive coordinate bisection (RCB) of element centroids.
Each node is owned by the lowest rank among the elements that touch it; nodes are
renumbered rank by rank (keeping the mesh order within a rank), so that every rank
owns one contiguous block of nodes, hence of dofs (``dof = 3 node + component``).
The partition is computed on rank 0 and broadcast (identical on every rank).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from mpi4py import MPI

from ..parallel import as_comm
from .mesh import FEMesh

__all__ = ["Partition", "partition_mesh", "rcb"]


@dataclass
class Partition:
    """Ownership of elements and nodes.

    Attributes
    ----------
    element_part : (n_elements,) owning rank of each element
    node_part : (n_nodes,) owning rank of each node
    new_of_old : (n_nodes,) new (rank-contiguous) number of each mesh node
    node_offsets : (size + 1,) first new node number of each rank
    method : ``"metis"``, ``"rcb"`` or ``"serial"``
    """

    element_part: np.ndarray
    node_part: np.ndarray
    new_of_old: np.ndarray
    node_offsets: np.ndarray
    method: str

    def elements(self, rank: int) -> np.ndarray:
        """Global element numbers owned by ``rank``."""
        return np.flatnonzero(self.element_part == rank)

    def dof_range(self, rank: int) -> tuple[int, int]:
        """Owned dof range [start, end) of ``rank`` in the new numbering."""
        return 3 * int(self.node_offsets[rank]), 3 * int(self.node_offsets[rank + 1])


def rcb(x: np.ndarray, n_parts: int) -> np.ndarray:
    """Recursive coordinate bisection of points x (n, 3) into ``n_parts`` parts of equal size."""
    part = np.zeros(len(x), np.int64)

    def split(idx, first, n):
        if n == 1 or len(idx) == 0:
            part[idx] = first
            return
        left = n // 2
        d = int(np.argmax(np.ptp(x[idx], axis=0)))
        order = idx[np.argsort(x[idx, d], kind="stable")]
        cut = round(len(idx) * left / n)
        split(order[:cut], first, left)
        split(order[cut:], first + left, n - left)

    split(np.arange(len(x)), 0, int(n_parts))
    return part


def _element_partition(mesh: FEMesh, n_parts: int, method: str) -> tuple[np.ndarray, str]:
    if n_parts == 1:
        return np.zeros(mesh.n_elements, np.int64), "serial"
    if method in ("auto", "metis"):
        try:
            import pymetis
        except ImportError:
            if method == "metis":
                raise
        else:
            conn = [c for b in mesh.blocks for c in b.cells[:, :b.etype.corners].tolist()]
            ncommon = min(3, min(b.etype.corners for b in mesh.blocks) - 1)
            res = pymetis.part_mesh(n_parts, conn, gtype=pymetis.GType.DUAL, ncommon=ncommon)
            part = np.asarray(res.element_part, np.int64)
            if len(np.unique(part)) == n_parts:    # METIS may leave a part empty on tiny meshes
                return part, "metis"
    centroids = np.concatenate([mesh.points[b.cells[:, :b.etype.corners]].mean(axis=1)
                                for b in mesh.blocks])
    return rcb(centroids, n_parts), "rcb"


def partition_mesh(mesh: FEMesh, comm: MPI.Comm | None, *, method: str = "auto") -> Partition:
    """Partition the elements over the ranks of ``comm`` and number nodes rank by rank.

    Parameters
    ----------
    mesh : the mesh (the same on every rank)
    comm : communicator (``None``: serial)
    method : ``"auto"`` (METIS if pymetis is installed, else RCB), ``"metis"`` or ``"rcb"``
    """
    comm = as_comm(comm)
    size = comm.size
    epart = None
    if comm.rank == 0:
        epart, used = _element_partition(mesh, size, method)
        epart = (epart, used)
    epart, used = comm.bcast(epart, root=0)
    npart = np.full(mesh.n_nodes, size, np.int64)
    for b in mesh.blocks:  # loop over element blocks (types) only
        first = int(b.ids[0]) if len(b.ids) else 0
        owners = np.repeat(epart[first:first + len(b.cells)], b.cells.shape[1])
        np.minimum.at(npart, b.cells.ravel(), owners)
    unused = npart == size
    npart[unused] = 0                                   # isolated nodes: rank 0
    order = np.lexsort((np.arange(mesh.n_nodes), npart))
    new_of_old = np.empty(mesh.n_nodes, np.int64)
    new_of_old[order] = np.arange(mesh.n_nodes)
    counts = np.bincount(npart, minlength=size)
    offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    return Partition(epart, npart, new_of_old, offsets, used)

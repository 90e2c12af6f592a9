"""Finite-element mesh for the solver: volume blocks and named groups from a meshio mesh.

Groups come from ``mesh.point_sets`` (nodes), ``mesh.cell_sets`` (volume cells:
their nodes; facet cells: surfaces for pressure) and gmsh physical groups
(``cell_data["gmsh:physical"]`` + ``field_data``). Facets of a group are
re-oriented from the adjacent volume element, so their normal points out of the body.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import meshio
import numpy as np

from ..parallel import UserError
from .elements import ELEMENTS, FACETS, ElementType, element_type

__all__ = ["Block", "FEMesh", "GroupError"]


class GroupError(UserError, KeyError):
    """A named group that the mesh does not have (names it and the available ones)."""

    def __str__(self) -> str:
        return str(self.args[0])


@dataclass
class Block:
    """Volume elements of one type: ``cells`` (n_el, n_nodes) and global element numbers ``ids``."""

    etype: ElementType
    cells: np.ndarray
    ids: np.ndarray


@dataclass
class Group:
    """A named group: its nodes and (for surfaces) its outward-oriented facets by facet type."""

    nodes: np.ndarray
    facets: dict = field(default_factory=dict)
    elements: np.ndarray | None = None


@dataclass
class FEMesh:
    """Nodes, volume element blocks and named groups.

    Attributes
    ----------
    points : (n_nodes, 3) coordinates [m]
    blocks : volume element blocks, element numbers contiguous in block order
    groups : name -> :class:`Group`
    source : description for error messages (file name)
    """

    points: np.ndarray
    blocks: list[Block]
    groups: dict[str, Group]
    source: str = "mesh"

    @property
    def n_nodes(self) -> int:
        return len(self.points)

    @property
    def n_elements(self) -> int:
        return sum(len(b.cells) for b in self.blocks)

    @classmethod
    def from_meshio(cls, mesh: meshio.Mesh, *, source: str = "mesh") -> FEMesh:
        """Build from a meshio mesh; cells that are neither volumes nor facets are ignored
        (vertices, lines); any other 3D cell type is an error naming it."""
        pts = np.asarray(mesh.points, float)
        if pts.shape[1] < 3:
            pts = np.column_stack([pts, np.zeros((len(pts), 3 - pts.shape[1]))])
        blocks, offset = [], 0
        vol_index = {}                       # meshio block index -> Block
        for i, cb in enumerate(mesh.cells):
            if cb.type in FACETS or cb.type in ("vertex", "line", "line3"):
                continue
            et = element_type(cb.type, where=source)
            data = np.asarray(cb.data, np.int64)
            b = Block(et, data, np.arange(offset, offset + len(data)))
            offset += len(data)
            blocks.append(b)
            vol_index[i] = b
        if not blocks:
            raise UserError(f"{source}: no volume cells (supported: {', '.join(ELEMENTS)}); "
                            f"cell types found: {', '.join(c.type for c in mesh.cells) or 'none'}")
        self = cls(pts, blocks, {}, source)
        faces = _FaceIndex(blocks)
        sets: dict[str, dict[int, np.ndarray]] = {}
        for name, per_block in (mesh.cell_sets or {}).items():
            for i, idx in enumerate(per_block):
                if idx is not None and len(idx):
                    sets.setdefault(name, {})[i] = np.asarray(idx, np.int64)
        phys = (mesh.cell_data or {}).get("gmsh:physical")
        if phys is not None:
            for name, (tag, *_rest) in (mesh.field_data or {}).items():
                for i, tags in enumerate(phys):
                    idx = np.flatnonzero(np.asarray(tags) == tag)
                    if len(idx):
                        sets.setdefault(name, {})[i] = idx
        for name, per_block in sets.items():
            nodes, facets, elems = [], {}, []
            for i, idx in per_block.items():
                cb = mesh.cells[i]
                data = np.asarray(cb.data, np.int64)[idx]
                nodes.append(data.ravel())
                if i in vol_index:
                    elems.append(vol_index[i].ids[idx])
                elif cb.type in FACETS:
                    oriented = faces.orient(cb.type, data, name, source)
                    facets[cb.type] = np.concatenate([facets.get(cb.type, np.zeros(
                        (0, data.shape[1]), np.int64)), oriented])
            self.groups[name] = Group(np.unique(np.concatenate(nodes)), facets,
                                      np.concatenate(elems) if elems else None)
        for name, idx in (mesh.point_sets or {}).items():   # merged with a cell set of that name
            nodes = np.unique(np.asarray(idx, np.int64))
            if name in self.groups:
                g = self.groups[name]
                g.nodes = np.union1d(g.nodes, nodes)
            else:
                self.groups[name] = Group(nodes)
        return self

    def group(self, name: str, *, what: str = "group") -> Group:
        """The group ``name``, or :class:`GroupError` naming it and the available groups."""
        if name not in self.groups:
            have = ", ".join(sorted(self.groups)) or "none"
            raise GroupError(f"{self.source}: {what} '{name}' not found in the mesh "
                             f"(groups: {have})")
        return self.groups[name]

    def surface(self, name: str, *, what: str = "surface group") -> dict[str, np.ndarray]:
        """Outward-oriented facets {facet type: (n_f, k) nodes} of a surface group."""
        g = self.group(name, what=what)
        if not g.facets:
            raise GroupError(f"{self.source}: {what} '{name}' has no facet (surface) cells; "
                             f"a pressure needs triangle/triangle6/quad cells in the group")
        return g.facets


class _FaceIndex:
    """Faces of all volume elements keyed by sorted corner nodes (vectorized lookup)."""

    def __init__(self, blocks: list[Block]):
        self.by_type: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        for b in blocks:
            for ftype, local in b.etype.faces:
                nodes = b.cells[:, local].reshape(-1, local.shape[1])     # (n_el * n_faces, k)
                keys = np.sort(nodes[:, :FACETS[ftype].corners], axis=1)
                old = self.by_type.get(ftype)
                if old is not None:
                    keys, nodes = np.concatenate([old[0], keys]), np.concatenate([old[1], nodes])
                self.by_type[ftype] = (keys, nodes)
        for ftype, (keys, nodes) in list(self.by_type.items()):
            order = np.lexsort(keys.T[::-1])
            self.by_type[ftype] = (keys[order], nodes[order])

    def orient(self, ftype: str, data: np.ndarray, name: str, source: str) -> np.ndarray:
        if ftype not in self.by_type:
            raise UserError(f"{source}: group '{name}': {ftype} facets do not match any volume "
                            f"element face")
        keys, nodes = self.by_type[ftype]
        q = np.sort(data[:, :FACETS[ftype].corners], axis=1)
        kv, qv = _void(keys), _void(q)
        pos = np.searchsorted(kv, qv)
        pos = np.minimum(pos, len(kv) - 1)
        bad = kv[pos] != qv
        if bad.any():
            k = int(np.argmax(bad))
            raise UserError(f"{source}: group '{name}': facet {k} (nodes {data[k].tolist()}) "
                            f"is not a face of any volume element")
        return nodes[pos]


def _void(a: np.ndarray) -> np.ndarray:
    a = np.ascontiguousarray(a, dtype=">i8")  # big-endian: byte order = numeric order for >= 0
    return a.view(np.dtype((np.void, a.dtype.itemsize * a.shape[1]))).ravel()

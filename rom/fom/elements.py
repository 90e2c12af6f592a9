"""Reference elements and quadrature: tet4, tet10, hex8 (volume) and tri3, tri6, quad4 (faces).

Node orderings are meshio's (= VTK's). Each element type gives the shape
functions and their reference gradients at its quadrature points all at once:
``N`` (n_qp, n_nodes) and ``dN`` (n_qp, n_nodes, dim).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["ELEMENTS", "FACETS", "ElementType", "UnknownElementError", "element_type"]

from ..parallel import UserError


class UnknownElementError(UserError, ValueError):
    """A cell type the solver does not support (names it and the supported ones)."""


@dataclass(frozen=True)
class ElementType:
    """A reference element with its quadrature rule.

    Attributes
    ----------
    name : meshio cell type (``"tetra"``, ``"tetra10"``, ``"hexahedron"``, ...)
    dim : reference dimension (3 for volumes, 2 for faces)
    n_nodes : nodes per element
    points : (n_qp, dim) quadrature points in reference coordinates
    weights : (n_qp,) quadrature weights
    N : (n_qp, n_nodes) shape functions at the quadrature points
    dN : (n_qp, n_nodes, dim) reference gradients at the quadrature points
    faces : local node lists of the faces (volumes only), as (facet type, (n_faces, k))
    corners : number of vertex nodes
    """

    name: str
    dim: int
    n_nodes: int
    points: np.ndarray
    weights: np.ndarray
    N: np.ndarray
    dN: np.ndarray
    faces: tuple = ()
    corners: int = 0

    @property
    def n_qp(self) -> int:
        return len(self.weights)


def _tet4(x):
    xi, eta, zeta = x.T
    N = np.stack([1 - xi - eta - zeta, xi, eta, zeta], axis=1)
    dN = np.broadcast_to(np.array([[-1, -1, -1], [1, 0, 0], [0, 1, 0], [0, 0, 1]], float),
                         (len(x), 4, 3)).copy()
    return N, dN


def _tet10(x):
    L = np.stack([1 - x.sum(1), x[:, 0], x[:, 1], x[:, 2]], axis=1)           # (nq, 4)
    dL = np.array([[-1, -1, -1], [1, 0, 0], [0, 1, 0], [0, 0, 1]], float)      # (4, 3)
    edges = np.array([[0, 1], [1, 2], [0, 2], [0, 3], [1, 3], [2, 3]])
    N = np.concatenate([L * (2 * L - 1), 4 * L[:, edges[:, 0]] * L[:, edges[:, 1]]], axis=1)
    dv = (4 * L - 1)[:, :, None] * dL[None]
    de = 4 * (L[:, edges[:, 0], None] * dL[None, edges[:, 1]] +
              L[:, edges[:, 1], None] * dL[None, edges[:, 0]])
    return N, np.concatenate([dv, de], axis=1)


_HEX = np.array([[-1, -1, -1], [1, -1, -1], [1, 1, -1], [-1, 1, -1],
                 [-1, -1, 1], [1, -1, 1], [1, 1, 1], [-1, 1, 1]], float)
_QUAD = np.array([[-1, -1], [1, -1], [1, 1], [-1, 1]], float)


def _tensor_lagrange1(ref):
    def f(x):
        g = 1.0 + x[:, None, :] * ref[None]                                     # (nq, nn, d)
        N = g.prod(axis=2) / 2 ** ref.shape[1]
        dN = np.empty(g.shape)
        for d in range(ref.shape[1]):  # loop over reference directions only
            others = np.delete(g, d, axis=2).prod(axis=2)
            dN[:, :, d] = ref[None, :, d] * others / 2 ** ref.shape[1]
        return N, dN
    return f


def _tri3(x):
    N = np.stack([1 - x[:, 0] - x[:, 1], x[:, 0], x[:, 1]], axis=1)
    dN = np.broadcast_to(np.array([[-1, -1], [1, 0], [0, 1]], float), (len(x), 3, 2)).copy()
    return N, dN


def _tri6(x):
    L = np.stack([1 - x[:, 0] - x[:, 1], x[:, 0], x[:, 1]], axis=1)
    dL = np.array([[-1, -1], [1, 0], [0, 1]], float)
    edges = np.array([[0, 1], [1, 2], [0, 2]])
    N = np.concatenate([L * (2 * L - 1), 4 * L[:, edges[:, 0]] * L[:, edges[:, 1]]], axis=1)
    dv = (4 * L - 1)[:, :, None] * dL[None]
    de = 4 * (L[:, edges[:, 0], None] * dL[None, edges[:, 1]] +
              L[:, edges[:, 1], None] * dL[None, edges[:, 0]])
    return N, np.concatenate([dv, de], axis=1)


def _gauss(n, dim):
    p, w = np.polynomial.legendre.leggauss(n)
    P = np.array(np.meshgrid(*([p] * dim), indexing="ij")).reshape(dim, -1).T
    W = np.array(np.meshgrid(*([w] * dim), indexing="ij")).reshape(dim, -1).T.prod(axis=1)
    return P, W


def _make(name, dim, nn, pts, wts, fn, faces=(), corners=0):
    pts = np.asarray(pts, float).reshape(-1, dim)
    N, dN = fn(pts)
    return ElementType(name, dim, nn, pts, np.asarray(wts, float), N, dN, faces, corners)


_a, _b = 0.5854101966249685, 0.1381966011250105
_TET4_PTS = np.array([[_b, _b, _b], [_a, _b, _b], [_b, _a, _b], [_b, _b, _a]])
_TRI3_PTS = np.array([[1 / 6, 1 / 6], [2 / 3, 1 / 6], [1 / 6, 2 / 3]])
_TET_FACES = np.array([[0, 2, 1], [0, 1, 3], [1, 2, 3], [0, 3, 2]])
_TET10_FACES = np.array([[0, 2, 1, 6, 5, 4], [0, 1, 3, 4, 8, 7], [1, 2, 3, 5, 9, 8],
                         [0, 3, 2, 7, 9, 6]])
_HEX_FACES = np.array([[0, 3, 2, 1], [4, 5, 6, 7], [0, 1, 5, 4], [1, 2, 6, 5], [2, 3, 7, 6],
                       [3, 0, 4, 7]])

#: facet (surface) element types, by meshio name
FACETS: dict[str, ElementType] = {
    "triangle": _make("triangle", 2, 3, [[1 / 3, 1 / 3]], [0.5], _tri3, corners=3),
    "triangle6": _make("triangle6", 2, 6, _TRI3_PTS, np.full(3, 1 / 6), _tri6, corners=3),
    "quad": _make("quad", 2, 4, *_gauss(2, 2), _tensor_lagrange1(_QUAD), corners=4),
}
#: volume element types, by meshio name
ELEMENTS: dict[str, ElementType] = {
    "tetra": _make("tetra", 3, 4, [[0.25, 0.25, 0.25]], [1 / 6], _tet4,
                   (("triangle", _TET_FACES),), corners=4),
    "tetra10": _make("tetra10", 3, 10, _TET4_PTS, np.full(4, 1 / 24), _tet10,
                     (("triangle6", _TET10_FACES),), corners=4),
    "hexahedron": _make("hexahedron", 3, 8, *_gauss(2, 3), _tensor_lagrange1(_HEX),
                        (("quad", _HEX_FACES),), corners=8),
}


def element_type(name: str, *, where: str = "mesh") -> ElementType:
    """The volume element type of a meshio cell type, or :class:`UnknownElementError`."""
    if name in ELEMENTS:
        return ELEMENTS[name]
    raise UnknownElementError(f"{where}: unsupported element type {name!r} "
                              f"(supported volume cells: {', '.join(ELEMENTS)})")


def shape_at(etype: ElementType, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Shape functions (m, n_nodes) and reference gradients (m, n_nodes, dim) at points x (m, dim)."""
    fn = {"tetra": _tet4, "tetra10": _tet10, "triangle": _tri3, "triangle6": _tri6}.get(etype.name)
    if fn is None:
        fn = _tensor_lagrange1(_HEX if etype.name == "hexahedron" else _QUAD)
    return fn(np.atleast_2d(np.asarray(x, float)))

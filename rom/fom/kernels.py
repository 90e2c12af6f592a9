"""FE kernels vectorized over elements and integration points (no Python loop over either).

Arrays are shaped ``(n_elements, n_qp, ...)``. Element dofs are node-major:
local dof ``3 a + i`` is component ``i`` of node ``a`` (global dof ``3 node + i``).
Strains/stresses are Voigt (xx, yy, zz, xy, yz, xz) with engineering shear strains,
as in :mod:`rom.materials.tensors`.
"""
from __future__ import annotations

import numpy as np

from ..parallel import UserError
from .elements import ElementType

__all__ = [
    "MeshGeometryError",
    "b_matrix",
    "body_forces",
    "facet_normals",
    "geometry",
    "internal_forces",
    "interpolate",
    "pressure_forces",
    "stiffness",
    "strains",
]


class MeshGeometryError(UserError, ValueError):
    """An inverted or degenerate element (names the element)."""


def geometry(X: np.ndarray, etype: ElementType, *, ids: np.ndarray | None = None
             ) -> tuple[np.ndarray, np.ndarray]:
    """Physical gradients and integration weights at every quadrature point.

    Parameters
    ----------
    X : (n_el, n_nodes, 3) node coordinates of the elements [m]
    etype : the reference element
    ids : (n_el,) global element numbers, for error messages

    Returns
    -------
    dNdx : (n_el, n_qp, n_nodes, 3) shape-function gradients [1/m]
    wdetJ : (n_el, n_qp) quadrature weight times det J [m^3]

    Raises
    ------
    MeshGeometryError : some det J <= 0 (inverted element); names the first one
    """
    J = np.einsum("qad,eai->eqid", etype.dN, X)             # J[i, d] = dx_i / dxi_d
    det = np.linalg.det(J)
    if np.any(det <= 0):
        k = int(np.argwhere((det <= 0).any(axis=1))[0, 0])
        el = int(ids[k]) if ids is not None else k
        raise MeshGeometryError(f"{etype.name} element {el} is inverted or degenerate "
                                f"(det J = {det[k].min():.3g} <= 0)")
    Jinv = np.linalg.inv(J)                                  # (e, q, d, i)
    dNdx = np.einsum("qad,eqdi->eqai", etype.dN, Jinv)
    return dNdx, det * etype.weights[None, :]


def b_matrix(dNdx: np.ndarray) -> np.ndarray:
    """Strain-displacement matrices (n_el, n_qp, 6, 3 n_nodes) (Voigt, engineering shears)."""
    ne, nq, nn, _ = dNdx.shape
    B = np.zeros((ne, nq, 6, nn, 3))
    gx, gy, gz = dNdx[..., 0], dNdx[..., 1], dNdx[..., 2]
    B[:, :, 0, :, 0] = gx
    B[:, :, 1, :, 1] = gy
    B[:, :, 2, :, 2] = gz
    B[:, :, 3, :, 0] = gy
    B[:, :, 3, :, 1] = gx
    B[:, :, 4, :, 1] = gz
    B[:, :, 4, :, 2] = gy
    B[:, :, 5, :, 0] = gz
    B[:, :, 5, :, 2] = gx
    return B.reshape(ne, nq, 6, 3 * nn)


def _voigt(G: np.ndarray) -> np.ndarray:
    """Voigt strains (..., 6), engineering shears, of displacement gradients (..., 3, 3)
    with ``G[..., i, j] = du_i / dx_j``."""
    return np.stack([G[..., 0, 0], G[..., 1, 1], G[..., 2, 2], G[..., 0, 1] + G[..., 1, 0],
                     G[..., 1, 2] + G[..., 2, 1], G[..., 0, 2] + G[..., 2, 0]], axis=-1)


def strains(dNdx: np.ndarray, ue: np.ndarray) -> np.ndarray:
    """Voigt strains (n_el, n_qp, 6) from element displacements ue (n_el, n_nodes, 3) [m]."""
    return _voigt(np.einsum("eqaj,eai->eqij", dNdx, ue))     # G[i, j] = du_i / dx_j


def strains_many(dNdx: np.ndarray, ue: np.ndarray, *, chunk: int = 256) -> np.ndarray:
    """Voigt strains (k, n_el, n_qp, 6) of k displacement fields at once, from element
    displacements ue (n_el, n_nodes, 3, k) [m] (e.g. the modes of a reduced basis): one
    batched matrix product per chunk of elements instead of k calls of :func:`strains`.
    Chunks of 256 elements keep the scratch near 5 MB for 16 fields and are the fastest
    here (``benchmarks/kernel_chunks.py``: 22,080 hex8, 16 fields: 0.15 s and 5 MB against
    0.38 s and 78 MB with 4096)."""
    n_el, n_qp = dNdx.shape[:2]
    na, k = ue.shape[1], ue.shape[-1]
    out = np.empty((k, n_el, n_qp, 6))
    for e0 in range(0, n_el, chunk):  # loop over element chunks (memory)
        e1 = min(e0 + chunk, n_el)
        ne = e1 - e0
        # G[e, q, j, i, m] = sum_a dNdx[e, q, a, j] ue[e, a, i, m]
        G = (np.swapaxes(dNdx[e0:e1], 2, 3).reshape(ne, 3 * n_qp, na)
             @ ue[e0:e1].reshape(ne, na, 3 * k)).reshape(ne, n_qp, 3, 3, k)
        out[:, e0:e1] = _voigt(np.transpose(G, (4, 0, 1, 3, 2)))    # (m, e, q, i, j)
    return out


def internal_forces(dNdx: np.ndarray, wdetJ: np.ndarray, stress: np.ndarray) -> np.ndarray:
    """Element internal forces int B^T sigma (n_el, 3 n_nodes) [N] from stresses (n_el, n_qp, 6)."""
    s = stress * wdetJ[..., None]
    S = np.empty(s.shape[:2] + (3, 3))
    S[..., 0, 0], S[..., 1, 1], S[..., 2, 2] = s[..., 0], s[..., 1], s[..., 2]
    S[..., 0, 1] = S[..., 1, 0] = s[..., 3]
    S[..., 1, 2] = S[..., 2, 1] = s[..., 4]
    S[..., 0, 2] = S[..., 2, 0] = s[..., 5]
    f = np.einsum("eqaj,eqij->eai", dNdx, S)
    return f.reshape(len(f), -1)


def stiffness(dNdx: np.ndarray, wdetJ: np.ndarray, D: np.ndarray, *,
              chunk: int = 1 << 14) -> np.ndarray:
    """Element tangent stiffness int B^T D B (n_el, 3 n_nodes, 3 n_nodes) [N/m].

    Parameters
    ----------
    D : (n_el, n_qp, 6, 6) tangent moduli [Pa] (or broadcastable, e.g. (6, 6))
    chunk : elements are processed in chunks of about ``chunk / (n_qp 3 n_nodes)`` (85
        hex8) so that the B-matrix temporaries stay near ``190 chunk`` bytes (3 MB by
        default): a scratch that does not grow with the mesh, and the fastest chunk here
        (``benchmarks/kernel_chunks.py``: 0.20 s for 22,080 hex8 against 0.40-0.47 s and
        192 MB with 64 times larger chunks)
    """
    n_el, n_qp = wdetJ.shape
    nd = 3 * dNdx.shape[2]
    D = np.broadcast_to(D, (n_el, n_qp, 6, 6))
    K = np.empty((n_el, nd, nd))
    step = max(1, chunk // max(n_qp * nd, 1))
    for a in range(0, n_el, step):  # loop over element chunks (bounded temporaries)
        e = slice(a, a + step)
        B = b_matrix(dNdx[e])                                   # (m, q, 6, nd)
        DB = np.matmul(D[e], B) * wdetJ[e, :, None, None]
        # sum over points inside the product: [B_1..B_q]^T [DB_1..DB_q]
        np.matmul(B.reshape(len(B), -1, nd).swapaxes(1, 2), DB.reshape(len(B), -1, nd),
                  out=K[e])
    return K


def interpolate(N: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Nodal values (n_el, n_nodes, ...) at quadrature points: (n_el, n_qp, ...)."""
    return np.einsum("qa,ea...->eq...", N, values)


def facet_normals(X: np.ndarray, ftype: ElementType) -> tuple[np.ndarray, np.ndarray]:
    """Area-weighted normals at facet quadrature points.

    Parameters
    ----------
    X : (n_f, n_nodes, 3) facet node coordinates [m]

    Returns
    -------
    nw : (n_f, n_qp, 3) normal times quadrature weight times area Jacobian [m^2]
        (orientation from the node order: right-hand rule)
    """
    T = np.einsum("qad,fai->fqdi", ftype.dN, X)              # tangents (f, q, 2, 3)
    return np.cross(T[:, :, 0], T[:, :, 1]) * ftype.weights[None, :, None]


def pressure_forces(X: np.ndarray, ftype: ElementType, pressure: np.ndarray | float
                    ) -> np.ndarray:
    """Nodal forces of a pressure acting against the facet normal: -int p N n dA.

    Parameters
    ----------
    X : (n_f, n_nodes, 3) facet nodes, ordered so that the normal points out of the body
    pressure : scalar or (n_f, n_qp) pressure [Pa] (positive pushes into the body)

    Returns
    -------
    (n_f, n_nodes, 3) nodal forces [N]
    """
    nw = facet_normals(X, ftype)
    p = np.broadcast_to(np.asarray(pressure, float), nw.shape[:2])
    return -np.einsum("qa,fq,fqi->fai", ftype.N, p, nw)


def body_forces(etype: ElementType, wdetJ: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Nodal forces int N b dV (n_el, n_nodes, 3) [N] of body forces b (n_el, n_qp, 3) [N/m^3]."""
    return np.einsum("qa,eq,eqi->eai", etype.N, wdetJ, b)

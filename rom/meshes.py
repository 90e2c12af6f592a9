"""Small structured mesh generators and mesh measures (vectorized, hex8).

These make the bundled cases and the tests self-contained; any meshio mesh can
replace them in a case file.
"""
from __future__ import annotations

import meshio
import numpy as np

__all__ = ["box", "plate_with_hole", "lumped_mass", "hex8_volumes"]

# hex8 reference vertices in VTK order
_HEX_REF = np.array([[-1, -1, -1], [1, -1, -1], [1, 1, -1], [-1, 1, -1],
                     [-1, -1, 1], [1, -1, 1], [1, 1, 1], [-1, 1, 1]], dtype=float)


def _hex_cells(ni: int, nj: int, nk: int, *, periodic_i: bool = False) -> np.ndarray:
    """Connectivity of a structured (ni x nj x nk node) block, nodes numbered i fastest."""
    ci = ni if periodic_i else ni - 1
    i, j, k = np.meshgrid(np.arange(ci), np.arange(nj - 1), np.arange(nk - 1), indexing="ij")
    i, j, k = i.ravel(), j.ravel(), k.ravel()
    ip = (i + 1) % ni

    def node(a, b, c):
        return a + ni * (b + nj * c)

    return np.stack([node(i, j, k), node(ip, j, k), node(ip, j + 1, k), node(i, j + 1, k),
                     node(i, j, k + 1), node(ip, j, k + 1), node(ip, j + 1, k + 1),
                     node(i, j + 1, k + 1)], axis=1).astype(np.int64)


def box(n: tuple[int, int, int], lengths: tuple[float, float, float] = (1.0, 1.0, 1.0)
        ) -> meshio.Mesh:
    """A box [0, Lx] x [0, Ly] x [0, Lz] meshed with n = (nx, ny, nz) hex8 cells."""
    nx, ny, nz = (int(v) for v in n)
    if min(nx, ny, nz) < 1:
        raise ValueError(f"box: need at least one cell per direction, got {n}")
    x, y, z = (np.linspace(0.0, L, m + 1) for L, m in zip(lengths, (nx, ny, nz)))
    X, Y, Z = np.meshgrid(x, y, z, indexing="ij")
    pts = np.stack([X.ravel(order="F"), Y.ravel(order="F"), Z.ravel(order="F")], axis=1)
    return meshio.Mesh(pts, [("hexahedron", _hex_cells(nx + 1, ny + 1, nz + 1))])


def plate_with_hole(*, half_width: float = 0.05, radius: float = 0.01, thickness: float = 0.005,
                    n_theta: int = 64, n_radial: int = 16, n_thick: int = 2,
                    grading: float = 1.12) -> meshio.Mesh:
    """A square plate with a centred circular hole, hex8, one structured polar block.

    The plate is [-h, h]^2 x [0, t] (h = ``half_width``, t = ``thickness``, in m).
    Radial lines join the hole (radius ``radius``) to the square boundary;
    element sizes grow geometrically (ratio ``grading``) away from the hole.
    """
    if not 0 < radius < half_width:
        raise ValueError(f"plate_with_hole: need 0 < radius < half_width, got {radius}, {half_width}")
    if n_theta < 8 or n_theta % 4 or n_radial < 1 or n_thick < 1:
        raise ValueError("plate_with_hole: n_theta must be a multiple of 4 (>= 8), "
                         "n_radial and n_thick >= 1")
    theta = np.linspace(0.0, 2 * np.pi, n_theta, endpoint=False)
    steps = grading ** np.arange(n_radial)
    s = np.concatenate([[0.0], np.cumsum(steps)]) / steps.sum()            # (n_radial+1,)
    c, sn = np.cos(theta), np.sin(theta)
    inner = radius * np.stack([c, sn], axis=1)
    outer = half_width * np.stack([c, sn], axis=1) / np.maximum(abs(c), abs(sn))[:, None]
    xy = inner[None, :, :] + s[:, None, None] * (outer - inner)[None, :, :]  # (nr, nth, 2)
    z = np.linspace(0.0, thickness, n_thick + 1)
    ni, nj, nk = n_theta, n_radial + 1, n_thick + 1
    # node index = i + ni * (j + nj * k): i = theta, j = radial, k = thickness
    XY = np.broadcast_to(xy[None], (nk, nj, ni, 2)).reshape(-1, 2)
    Z = np.repeat(z, nj * ni)
    pts = np.column_stack([XY, Z])
    cells = _hex_cells(ni, nj, nk, periodic_i=True)[:, [0, 3, 2, 1, 4, 7, 6, 5]]  # (theta, r, z) is
    return meshio.Mesh(pts, [("hexahedron", cells)])                             # left-handed: flip


def hex8_volumes(points: np.ndarray, cells: np.ndarray) -> np.ndarray:
    """Nodal shares of hex8 cell volumes: (n_cells, 8), exact (2x2x2 Gauss) for trilinear maps."""
    g = 1.0 / np.sqrt(3.0)
    q = np.array(np.meshgrid([-g, g], [-g, g], [-g, g], indexing="ij")).reshape(3, -1).T  # (8, 3)
    r = _HEX_REF
    # shape functions N_a(q) = prod (1 + r_a q) / 8 and derivatives, (nq, 8) and (nq, 8, 3)
    f = 1.0 + q[:, None, :] * r[None, :, :]                                   # (nq, 8, 3)
    N = f.prod(axis=2) / 8.0
    dN = np.empty((len(q), 8, 3))
    for d in range(3):  # loop over the 3 reference directions only
        others = [e for e in range(3) if e != d]
        dN[:, :, d] = r[None, :, d] * f[:, :, others[0]] * f[:, :, others[1]] / 8.0
    X = points[cells]                                                         # (nc, 8, 3)
    J = np.einsum("qad,cai->cqid", dN, X)                                     # (nc, nq, 3, 3)
    detJ = np.linalg.det(J)                                                   # (nc, nq)
    if np.any(detJ <= 0):
        bad = int(np.argwhere((detJ <= 0).any(axis=1))[0, 0])
        raise ValueError(f"hex8 cell {bad} is inverted or degenerate (det J <= 0)")
    return np.einsum("cq,qa->ca", detJ, N)                                    # weights 1


def lumped_mass(mesh: meshio.Mesh) -> np.ndarray:
    """Row-sum lumped volume "mass" per node (n_points,), in m^3 (unit density).

    Supports hexahedron (exact integration of the trilinear map) and tetra
    (volume / 4 per vertex) cells.
    """
    m = np.zeros(len(mesh.points))
    pts = np.asarray(mesh.points, dtype=float)
    if pts.shape[1] == 2:
        pts = np.column_stack([pts, np.zeros(len(pts))])
    known = False
    for block in mesh.cells:
        if block.type == "hexahedron":
            np.add.at(m, block.data, hex8_volumes(pts, block.data))
            known = True
        elif block.type == "tetra":
            X = pts[block.data]
            vol = np.abs(np.linalg.det(X[:, 1:] - X[:, :1])) / 6.0
            np.add.at(m, block.data, np.repeat(vol[:, None] / 4.0, 4, axis=1))
            known = True
    if not known:
        types = ", ".join(b.type for b in mesh.cells)
        raise ValueError(f"lumped_mass: no hexahedron or tetra cells in the mesh (has: {types})")
    return m


# ----------------------------------------------------------------------------------------------
# Solid meshes with named groups (tet4 / tet10 / hex8) for the full-order solver (rom.fom).
__all__ += ["solid_block", "thick_cylinder"]

# Freudenthal split of a hex (VTK order) into 6 tets around the diagonal 0-6 (conforming)
_KUHN = np.array([[0, 1, 2, 6], [0, 2, 3, 6], [0, 3, 7, 6], [0, 7, 4, 6], [0, 4, 5, 6],
                  [0, 5, 1, 6]])
_TET10_EDGES = np.array([[0, 1], [1, 2], [0, 2], [0, 3], [1, 3], [2, 3]])
_SOLID_FACES = {  # volume type -> (facet type, local face nodes)
    "hexahedron": ("quad", np.array([[0, 3, 2, 1], [4, 5, 6, 7], [0, 1, 5, 4], [1, 2, 6, 5],
                                     [2, 3, 7, 6], [3, 0, 4, 7]]), 4),
    "tetra": ("triangle", np.array([[0, 2, 1], [0, 1, 3], [1, 2, 3], [0, 3, 2]]), 3),
    "tetra10": ("triangle6", np.array([[0, 2, 1, 6, 5, 4], [0, 1, 3, 4, 8, 7],
                                       [1, 2, 3, 5, 9, 8], [0, 3, 2, 7, 9, 6]]), 3),
}


def _tet_orient(P: np.ndarray, tets: np.ndarray) -> np.ndarray:
    X = P[tets[:, :4]]
    neg = np.linalg.det(X[:, 1:4] - X[:, :1]) < 0
    tets = tets.copy()
    tets[neg, 1], tets[neg, 2] = tets[neg, 2].copy(), tets[neg, 1].copy()
    return tets


def _add_midside(P: np.ndarray, tets: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """tet4 -> tet10: one new node at the middle of every edge (meshio/VTK edge order)."""
    e = np.sort(tets[:, _TET10_EDGES], axis=2).reshape(-1, 2)
    uniq, inv = np.unique(e, axis=0, return_inverse=True)
    mid = 0.5 * (P[uniq[:, 0]] + P[uniq[:, 1]])
    t10 = np.concatenate([tets, len(P) + inv.reshape(len(tets), 6)], axis=1)
    return np.concatenate([P, mid]), t10


def solid_block(n: tuple[int, int, int], *, cell: str = "hexahedron",
                lengths: tuple[float, float, float] = (1.0, 1.0, 1.0), distort: float = 0.0,
                seed: int = 0, mapping=None,
                names: tuple[str, ...] = ("xmin", "xmax", "ymin", "ymax", "zmin", "zmax"),
                ) -> meshio.Mesh:
    """A block [0, Lx] x [0, Ly] x [0, Lz] of hex8, tet4 or tet10 cells with named boundary groups.

    Parameters
    ----------
    n : cells per direction (each hex is split into 6 tets for tetra / tetra10)
    cell : ``"hexahedron"``, ``"tetra"`` or ``"tetra10"``
    lengths : block size [m] (in the parametric space when ``mapping`` is given)
    distort : random displacement of interior nodes, as a fraction of the smallest cell
        size (0.2 keeps elements valid); boundary planes stay plane; tet10 edges stay
        straight (mid-side nodes at edge middles)
    seed : random seed of the distortion
    mapping : optional function (m, 3) -> (m, 3) applied to the (parametric) node
        coordinates, e.g. to bend the block into a cylinder (tet10 mid-side nodes are
        mapped too: curved isoparametric elements)
    names : names of the six boundary faces x=0, x=Lx, y=0, y=Ly, z=0, z=Lz

    Returns
    -------
    meshio.Mesh with one volume block, one facet block per named face (``cell_sets``
    ``names[k]``, plus ``"volume"``) and ``point_sets`` of the same names.
    """
    if cell not in _SOLID_FACES:
        raise ValueError(f"solid_block: cell must be one of {list(_SOLID_FACES)}, got {cell!r}")
    nx, ny, nz = (int(v) for v in n)
    L = np.asarray(lengths, float)
    axes = [np.linspace(0.0, L[d], m + 1) for d, m in enumerate((nx, ny, nz))]
    X, Y, Z = np.meshgrid(*axes, indexing="ij")
    P = np.stack([X.ravel(order="F"), Y.ravel(order="F"), Z.ravel(order="F")], axis=1)
    hexes = _hex_cells(nx + 1, ny + 1, nz + 1)
    h = (L / np.array([nx, ny, nz])).min()
    tol = 1e-9 * L.max()
    on_bnd = np.zeros(len(P), bool)
    for d in range(3):
        on_bnd |= (abs(P[:, d]) < tol) | (abs(P[:, d] - L[d]) < tol)
    if distort:
        rng = np.random.default_rng(seed)
        P = P + np.where(on_bnd[:, None], 0.0, distort * h * rng.uniform(-1, 1, P.shape))
    if cell == "hexahedron":
        cells = hexes
    else:
        cells = _tet_orient(P, hexes[:, _KUHN].reshape(-1, 4))
        if cell == "tetra10":
            P, cells = _add_midside(P, cells)   # straight edges: affine tet10
    ftype, local, nc = _SOLID_FACES[cell]
    faces = cells[:, local].reshape(-1, local.shape[1])
    key = np.sort(faces[:, :nc], axis=1)
    _, inv, cnt = np.unique(key, axis=0, return_inverse=True, return_counts=True)
    bfaces = faces[cnt[inv.ravel()] == 1]
    blocks = [(cell, cells)]
    cell_sets = {"volume": [np.arange(len(cells))]}
    point_sets = {}
    for k, name in enumerate(names):
        d, hi = divmod(k, 2)
        target = L[d] if hi else 0.0
        sel = np.all(abs(P[bfaces[:, :nc], d] - target) < tol, axis=1)
        blocks.append((ftype, bfaces[sel]))
        point_sets[name] = np.unique(bfaces[sel])
    for k, name in enumerate(names):
        cell_sets[name] = [np.zeros(0, np.int64)] * (k + 1) + [np.arange(len(blocks[k + 1][1]))] \
            + [np.zeros(0, np.int64)] * (len(names) - k - 1)
    cell_sets["volume"] = [np.arange(len(cells))] + [np.zeros(0, np.int64)] * len(names)
    if mapping is not None:
        P = np.asarray(mapping(P), float)
    return meshio.Mesh(P, blocks, cell_sets=cell_sets, point_sets=point_sets)


def thick_cylinder(inner_radius: float = 1.0, outer_radius: float = 2.0, height: float = 0.25,
                   n: tuple[int, int, int] = (4, 8, 1), *, cell: str = "tetra",
                   angle: float = np.pi / 2) -> meshio.Mesh:
    """A sector of a thick-walled cylinder (axis z), for the Lame problem.

    Parameters
    ----------
    inner_radius, outer_radius, height : geometry [m]
    n : cells in (radius, angle, height)
    cell : ``"hexahedron"``, ``"tetra"`` or ``"tetra10"`` (tet10: curved, isoparametric)
    angle : sector angle [rad], from the x axis

    Returns
    -------
    meshio.Mesh with groups ``inner``, ``outer`` (curved faces), ``theta0`` (plane y = 0),
    ``theta1`` (plane at ``angle``; x = 0 for the default quarter), ``zmin``, ``zmax``.
    """
    a, b = float(inner_radius), float(outer_radius)

    def to_xyz(P):
        r, t = a + P[:, 0], P[:, 1]
        return np.column_stack([r * np.cos(t), r * np.sin(t), P[:, 2]])

    return solid_block(n, cell=cell, lengths=(b - a, angle, height), mapping=to_xyz,
                       names=("inner", "outer", "theta0", "theta1", "zmin", "zmax"))

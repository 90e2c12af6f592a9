"""Parametric high-pressure-turbine blade: fir-tree-like root block, platform, airfoil (hex8).

Frame: engine axis along x (gas flows towards +x), blade stacked along +z (radial),
circumferential direction y. The rotation axis is the line through
``BladeGeometry.axis_point = (0, 0, -hub_radius)`` along ``axis_direction = (1, 0, 0)``,
so the radius of a point is ``sqrt(y**2 + (z + hub_radius)**2)``.

From the bottom up (z in m, ``z = 0`` is the airfoil hub):

1. root block: rectangle ``root_length`` (x) by ``root_width`` (y), height
   ``root_height`` (a simplified fir-tree attachment);
2. shank: ruled blend from the root rectangle to the platform rectangle over
   ``shank_height`` (its lateral faces are the platform underside);
3. platform slab: rectangle ``platform_length`` by ``platform_width``, vertical sides,
   thickness ``platform_thickness``;
4. fillet: ruled blend from the platform rectangle to the hub airfoil section over
   ``fillet_height`` (its lateral faces are the gas-side top face of the platform);
5. airfoil from ``z = 0`` to ``z = span``: NACA 4-digit section (camber line
   ``camber``/``camber_position``, thickness ``thickness`` laid off normal to the camber
   line, closed trailing edge) with flat leading and trailing edges of thickness
   ``min_thickness`` (see :func:`half_thickness`: true corners, so no element degenerates),
   chord linear from ``chord`` at the hub to ``taper * chord`` at the tip, turned by
   ``stagger + twist * z / span`` about +z. Sections are centred so that their area
   centroid is on the z axis (radial stacking through the centroid; twist about it).

One structured (i chord, j thickness, k span) block. Every node of a k layer has the same
z (so each hex has horizontal top and bottom faces), and each cross-section is a grid of
the same (i, j) topology: uniform in the rectangles; in the airfoil :func:`section_grid`
(i at the chord fractions ``x(s) = b (1 - cos(pi s)) / 2 + (1 - b) s``,
``b = CHORD_CLUSTERING``, s uniform; j uniform along the normal to the camber line).
Blends are node by node and linear in z. Quality (:func:`hex_quality`): scaled Jacobian
>= 0.7 in the airfoil, >= 0.44 in root, shank and platform; the worst elements are the
fillet's, where the platform corners are blended into the flat leading and trailing
edges (see :func:`blade_mesh`); a taller fillet improves them.
"""
from __future__ import annotations

import math
import numbers
import os
from dataclasses import dataclass, fields
from pathlib import Path

import meshio
import numpy as np

from .meshes import _HEX_REF, _SOLID_FACES, _hex_cells

__all__ = ["CHORD_CLUSTERING", "COMPOSITES", "SURFACES", "BladeGeometry", "blade_mesh",
           "chord_stations", "half_thickness", "hex_quality", "section_grid", "write_blade_mesh"]

CHORD_CLUSTERING = 0.5   # share of cosine spacing in the chordwise stations
# cells per unit of ``size``: chord, thickness, then span layers by region
_NI, _NJ = 20, 6
_LAYERS = {"root": 5, "shank": 2, "platform": 1, "fillet": 1, "airfoil": 14}
_HEX_FACE = dict(zip(("kmin", "kmax", "jmin", "imax", "jmax", "imin"),
                     _SOLID_FACES["hexahedron"][1]))   # outward for positive hexes
#: boundary groups (one quad block each, disjoint, covering the whole boundary)
SURFACES = ("root", "cooling", "platform_sides", "platform", "pressure_side", "suction_side",
            "leading_edge", "trailing_edge", "tip")
#: unions of surfaces
COMPOSITES = {"airfoil": ("pressure_side", "suction_side", "leading_edge", "trailing_edge",
                          "tip")}


@dataclass(frozen=True)
class BladeGeometry:
    """Blade parameters; lengths in m, angles in rad, section ratios as fractions of chord.

    Attributes
    ----------
    chord, span, taper : hub chord, airfoil height, tip chord / hub chord
    camber, camber_position, thickness : NACA 4-digit m, p, t (fractions of chord)
    min_thickness : thickness of the flat leading and trailing edges (fraction of chord)
    stagger, twist : chord angle to x at the hub, and its increase hub to tip (about +z)
    platform_length, platform_width, platform_thickness : slab (x, y, z sizes)
    fillet_height : height of the platform -> airfoil blend (gas-side platform face)
    shank_height : height of the root -> platform blend (platform underside)
    root_length, root_width, root_height : root block (x, y, z sizes)
    hub_radius : distance from the rotation axis to the hub plane z = 0
    """

    chord: float = 0.030
    span: float = 0.040
    taper: float = 0.8
    camber: float = 0.10
    camber_position: float = 0.4
    thickness: float = 0.18
    min_thickness: float = 0.03
    stagger: float = math.radians(20.0)
    twist: float = math.radians(20.0)
    platform_length: float = 0.038
    platform_width: float = 0.024
    platform_thickness: float = 0.002
    fillet_height: float = 0.003
    shank_height: float = 0.004
    root_length: float = 0.030
    root_width: float = 0.010
    root_height: float = 0.015
    hub_radius: float = 0.27

    def __post_init__(self):
        for f in fields(self):
            v = getattr(self, f.name)
            if not isinstance(v, numbers.Real) or not np.isfinite(v):
                raise ValueError(f"BladeGeometry: {f.name} must be a finite number, got {v!r}")
        positive = ("chord", "span", "taper", "platform_length", "platform_width",
                    "platform_thickness", "fillet_height", "shank_height", "root_length",
                    "root_width", "root_height", "hub_radius")
        for name in positive:
            if getattr(self, name) <= 0:
                raise ValueError(f"BladeGeometry: {name} must be > 0, got {getattr(self, name)}")
        checks = [
            (0 < self.thickness < 1, "thickness must be in (0, 1) (fraction of chord)"),
            (0 < self.min_thickness <= self.thickness / 2,
             "min_thickness must be in (0, thickness / 2]"),
            (0 <= self.camber < 0.3, "camber must be in [0, 0.3) (fraction of chord)"),
            (0 < self.camber_position < 1, "camber_position must be in (0, 1)"),
            (abs(self.stagger) < np.pi / 3, "|stagger| must be < pi/3 rad"),
            (abs(self.twist) < np.pi / 2, "|twist| must be < pi/2 rad"),
            (self.root_length <= self.platform_length and self.root_width
             <= self.platform_width, "the root block must fit under the platform"),
            (self.hub_radius > -self.z_root, ("hub_radius must exceed the blade's depth "
                                              "below the hub (the root would cross the axis)")),
        ]
        for ok, msg in checks:
            if not ok:
                raise ValueError(f"BladeGeometry: {msg}; got {self}")
        xy = _outline(self, self.chord, self.stagger)
        half = np.abs(xy).max(axis=0)
        if half[0] >= self.platform_length / 2 or half[1] >= self.platform_width / 2:
            raise ValueError(f"BladeGeometry: the hub section (|x| <= {half[0]:.4g}, |y| <= "
                             f"{half[1]:.4g} m) must fit inside the platform "
                             f"({self.platform_length / 2:.4g} x {self.platform_width / 2:.4g} m "
                             "half sizes)")

    @property
    def axis_point(self) -> tuple[float, float, float]:
        """A point of the rotation axis [m]."""
        return (0.0, 0.0, -self.hub_radius)

    @property
    def axis_direction(self) -> tuple[float, float, float]:
        """Direction of the rotation (engine) axis."""
        return (1.0, 0.0, 0.0)

    @property
    def z_root(self) -> float:
        """z of the root's bottom face [m] (negative)."""
        return -(self.fillet_height + self.platform_thickness + self.shank_height
                 + self.root_height)


def chord_stations(n: int) -> np.ndarray:
    """(n,) chord fractions of the i stations, leading edge (0) to trailing edge (1)."""
    s = np.linspace(0.0, 1.0, n)
    return CHORD_CLUSTERING * (1 - np.cos(np.pi * s)) / 2 + (1 - CHORD_CLUSTERING) * s


def _naca_thickness(t: float, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """NACA 4-digit half thickness (closed trailing edge) and its slope at x (n,)."""
    k = np.array([0.2969, -0.1260, -0.3516, 0.2843, -0.1036]) * 5 * t
    sx = np.sqrt(np.maximum(x, 1e-300))
    y = k[0] * sx + x * (k[1] + x * (k[2] + x * (k[3] + x * k[4])))
    dy = k[0] / (2 * sx) + k[1] + x * (2 * k[2] + x * (3 * k[3] + x * 4 * k[4]))
    return y, dy


def half_thickness(g: BladeGeometry, x: np.ndarray) -> np.ndarray:
    """Half thickness (n,) of the unit-chord section at chord fractions x (n,).

    NACA 4-digit (closed trailing edge), except: in front of ``x_b``, where the tangent
    from ``(0, min_thickness / 2)`` touches the NACA curve, that tangent (a flat leading
    edge, C1 with the profile); aft of mid-chord at least ``min_thickness / 2`` (a flat
    trailing edge).
    """
    a = g.min_thickness / 2
    xf = np.linspace(0.0, 0.5, 20001)[1:] ** 2           # 0 < x <= 0.25, fine at the nose
    yf, dyf = _naca_thickness(g.thickness, xf)
    xb = np.interp(a, yf - xf * dyf, xf)                 # yt - x yt' increases (yt concave)
    dyb = _naca_thickness(g.thickness, np.array([xb]))[1]
    yt = _naca_thickness(g.thickness, x)[0]
    yt = np.where(x < xb, a + dyb[0] * x, yt)
    return np.where(x >= 0.5, np.maximum(yt, a), yt)


def _section(g: BladeGeometry, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Lower and upper points (n, 2) of the unit-chord section at chord fractions x (n,)."""
    m, p = g.camber, g.camber_position
    yt = half_thickness(g, x)
    fore = x < p
    yc = np.where(fore, m / p**2 * (2 * p * x - x**2),
                  m / (1 - p)**2 * (1 - 2 * p + 2 * p * x - x**2))
    dyc = np.where(fore, 2 * m / p**2 * (p - x), 2 * m / (1 - p)**2 * (p - x))
    th = np.arctan(dyc)
    c = np.column_stack([x, yc])
    n = np.column_stack([-np.sin(th), np.cos(th)]) * yt[:, None]
    return c - n, c + n


def _fine(a: float, b: float) -> np.ndarray:
    """Chord fractions a..b, fine and clustered at both ends (round nose: y ~ sqrt(x))."""
    return a + (b - a) * (1 - np.cos(np.linspace(0.0, np.pi, 4001))) / 2


def _centroid(g: BladeGeometry) -> np.ndarray:
    """Area centroid (2,) of the unit-chord section (fine polygon, independent of the mesh)."""
    lo, up = _section(g, _fine(0.0, 1.0))
    P = np.concatenate([lo, up[::-1]])
    Q = np.roll(P, -1, axis=0)
    cross = P[:, 0] * Q[:, 1] - Q[:, 0] * P[:, 1]
    return ((P + Q) * cross[:, None]).sum(axis=0) / (3 * cross.sum())


def _rotate(xy: np.ndarray, angle: np.ndarray) -> np.ndarray:
    """Rotate points (..., 2) by angle (broadcast over the leading axes) about the origin."""
    c, s = np.cos(angle)[..., None], np.sin(angle)[..., None]
    return np.concatenate([c * xy[..., :1] - s * xy[..., 1:], s * xy[..., :1] + c * xy[..., 1:]],
                          axis=-1)


def _outline(g: BladeGeometry, chord: float, angle: float) -> np.ndarray:
    """Boundary points of a section (lower then upper), centred and turned, (n, 2) in m."""
    lo, up = _section(g, _fine(0.0, 1.0))
    return _rotate(chord * (np.concatenate([lo, up]) - _centroid(g)), np.asarray(angle))


def section_grid(g: BladeGeometry, ni: int, nj: int) -> np.ndarray:
    """Structured grid (nj, ni, 2) of the unit-chord section, centroid at the origin.

    Station i at chord fraction ``chord_stations(ni)[i]``; j uniform along the normal to
    the camber line from the lower (pressure, j = 0) to the upper (suction) surface.
    """
    lo, up = _section(g, chord_stations(ni))
    t = np.linspace(0.0, 1.0, nj)[:, None, None]
    return lo[None] + t * (up - lo)[None] - _centroid(g)


def blade_mesh(geometry: BladeGeometry | None = None, size: int = 1) -> meshio.Mesh:
    """Structured hex8 mesh of the blade with named boundary groups.

    Parameters
    ----------
    geometry : the blade (default ``BladeGeometry()``)
    size : resolution factor (int >= 1): ``20 size`` cells along the chord, ``6 size``
        across, ``23 size`` along z (root 5, shank 2, platform 1, fillet 1, airfoil 14
        per unit). Nodes ``(20 s + 1)(6 s + 1)(23 s + 1)``, dofs 3x that:

        ====  =========  ==========  =========  ==========  ==========
        size      nodes        dofs   elements  min scaled  max aspect
                                                  Jacobian       ratio
        ====  =========  ==========  =========  ==========  ==========
        1         3,528      10,584      2,760       0.117         133
        2        25,051      75,153     22,080       0.110         133
        3        81,130     243,390     74,520       0.099         133
        4       188,325     564,975    176,640       0.080         133
        5       363,196   1,089,588    345,000       0.069         133
        ====  =========  ==========  =========  ==========  ==========

        (default geometry; outside the fillet layer: scaled Jacobian >= 0.44, aspect
        ratio <= 24 at every size; the worst are the fillet's few corner elements at the
        leading and trailing edges). Generating size 5 takes a few seconds and ~0.8 GB.

    Returns
    -------
    meshio.Mesh: points (n, 3) [m]; a ``hexahedron`` block (VTK order, positive Jacobian)
    then one ``quad`` block per surface of :data:`SURFACES` (outward normals: ``root``,
    ``cooling`` (root sides and platform underside), ``platform_sides``, ``platform``
    (gas side), ``pressure_side``, ``suction_side``, ``leading_edge``, ``trailing_edge``,
    ``tip``); ``cell_sets`` of those names, ``airfoil`` (pressure, suction, edges and
    tip) and ``volume``; ``point_sets`` of the surface and composite names.
    """
    g = BladeGeometry() if geometry is None else geometry
    if isinstance(size, bool) or not isinstance(size, int | np.integer) or size < 1:
        raise ValueError(f"blade_mesh: size must be an integer >= 1, got {size!r}")
    ni, nj = _NI * size + 1, _NJ * size + 1
    layers = {k: v * size for k, v in _LAYERS.items()}
    # z levels and blend weights (root rectangle, platform rectangle, airfoil) per level
    heights = {"root": g.root_height, "shank": g.shank_height,
               "platform": g.platform_thickness, "fillet": g.fillet_height, "airfoil": g.span}
    start = {"root": (1, 0, 0), "shank": (1, 0, 0), "platform": (0, 1, 0),
             "fillet": (0, 1, 0), "airfoil": (0, 0, 1)}
    end = {"root": (1, 0, 0), "shank": (0, 1, 0), "platform": (0, 1, 0),
           "fillet": (0, 0, 1), "airfoil": (0, 0, 1)}
    z, w, region = [np.array([g.z_root])], [np.array([start["root"]], float)], []
    base = g.z_root
    for r, n in layers.items():          # 5 regions
        zeta = np.arange(1, n + 1) / n
        z.append(base + heights[r] * zeta)
        w.append(np.outer(1 - zeta, start[r]) + np.outer(zeta, end[r]))
        region += [r] * n
        base = 0.0 if r == "fillet" else base + heights[r]   # the hub is exactly z = 0
    z, w, region = np.concatenate(z), np.concatenate(w), np.array(region)
    # cross-section grids (nj, ni, 2)
    s, t = np.linspace(0.0, 1.0, ni), np.linspace(0.0, 1.0, nj)
    S, T = np.meshgrid(s - 0.5, t - 0.5)
    root = np.stack([g.root_length * S, g.root_width * T], axis=-1)
    plat = np.stack([g.platform_length * S, g.platform_width * T], axis=-1)
    unit = section_grid(g, ni, nj)
    za = np.clip(z, 0.0, g.span) / g.span
    chord = g.chord * (1 + (g.taper - 1) * za)
    foil = chord[:, None, None, None] * _rotate(unit[None], (g.stagger + g.twist * za)[:, None, None])
    xy = w[:, 0, None, None, None] * root + w[:, 1, None, None, None] * plat \
        + w[:, 2, None, None, None] * foil                                     # (nk, nj, ni, 2)
    nk = len(z)
    pts = np.column_stack([xy.reshape(-1, 2), np.repeat(z, nj * ni)])
    cells = _hex_cells(ni, nj, nk)
    I, J, K = (a.ravel() for a in np.meshgrid(np.arange(ni - 1), np.arange(nj - 1),
                                              np.arange(nk - 1), indexing="ij"))
    reg = region[K]

    def faces(mask, side):
        return cells[mask][:, _HEX_FACE[side]]

    def lateral(mask):
        return np.concatenate([faces(mask & (J == 0), "jmin"), faces(mask & (I == ni - 2), "imax"),
                               faces(mask & (J == nj - 2), "jmax"), faces(mask & (I == 0), "imin")])

    foil_cells = reg == "airfoil"
    surf = {"root": faces(K == 0, "kmin"),
            "cooling": lateral((reg == "root") | (reg == "shank")),
            "platform_sides": lateral(reg == "platform"),
            "platform": lateral(reg == "fillet"),
            "pressure_side": faces(foil_cells & (J == 0), "jmin"),
            "suction_side": faces(foil_cells & (J == nj - 2), "jmax"),
            "leading_edge": faces(foil_cells & (I == 0), "imin"),
            "trailing_edge": faces(foil_cells & (I == ni - 2), "imax"),
            "tip": faces(K == nk - 2, "kmax")}
    nb = 1 + len(SURFACES)
    empty = np.zeros(0, np.int64)
    cell_sets = {"volume": [np.arange(len(cells))] + [empty] * len(SURFACES)}
    for b, name in enumerate(SURFACES, start=1):
        cell_sets[name] = [empty] * b + [np.arange(len(surf[name]))] + [empty] * (nb - b - 1)
    for name, parts in COMPOSITES.items():
        cell_sets[name] = [cell_sets[p][b] if p in parts else empty
                           for b, p in enumerate(("volume",) + SURFACES)]
    point_sets = {name: np.unique(surf[name]) for name in SURFACES}
    point_sets |= {c: np.unique(np.concatenate([surf[p] for p in parts]))
                   for c, parts in COMPOSITES.items()}
    # supports that leave the root free to expand: the root face's mid line along x
    # (j in the middle) and its centre node; with z fixed on `root`, y on `root_midline`
    # and x at `root_center` the blade is held without restraining thermal expansion
    jm, im = (nj - 1) // 2, (ni - 1) // 2
    point_sets["root_midline"] = np.arange(ni, dtype=np.int64) + ni * jm
    point_sets["root_center"] = np.array([im + ni * jm], np.int64)
    sj, _ = hex_quality(pts, cells)
    if sj.min() <= 0:
        raise ValueError(f"blade_mesh: {int((sj <= 0).sum())} inverted elements (first at z = "
                         f"{pts[cells[np.argmin(sj)], 2].mean():.4g} m) for {g}")
    blocks = [("hexahedron", cells)] + [("quad", surf[n]) for n in SURFACES]
    return meshio.Mesh(pts, blocks, cell_sets=cell_sets, point_sets=point_sets)


def hex_quality(points: np.ndarray, cells: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Scaled Jacobian and aspect ratio of hex8 cells (VTK order).

    Parameters
    ----------
    points : (n_points, 3) [m]
    cells : (n_cells, 8)

    Returns
    -------
    scaled_jacobian : (n_cells,) min over the 8 corners of det J / (|J1| |J2| |J3|)
        (1 for a box, <= 0 for an inverted corner)
    aspect_ratio : (n_cells,) longest / shortest of the 12 edges
    """
    X = points[cells]                                              # (nc, 8, 3)
    r = _HEX_REF
    f = 1.0 + r[:, None, :] * r[None, :, :]                        # (corner, node, 3)
    dN = np.stack([r[None, :, d] * f[:, :, (d + 1) % 3] * f[:, :, (d + 2) % 3] / 8
                   for d in range(3)], axis=-1)                    # (corner, node, 3)
    J = np.einsum("qad,cai->cqid", dN, X)                          # (nc, 8, 3, 3): columns d
    sj = np.linalg.det(J) / np.prod(np.linalg.norm(J, axis=2), axis=2)
    edges = np.array([[0, 1], [1, 2], [2, 3], [3, 0], [4, 5], [5, 6], [6, 7], [7, 4],
                      [0, 4], [1, 5], [2, 6], [3, 7]])
    L = np.linalg.norm(X[:, edges[:, 1]] - X[:, edges[:, 0]], axis=2)
    return sj.min(axis=1), L.max(axis=1) / L.min(axis=1)


def write_blade_mesh(path: str | os.PathLike, geometry: BladeGeometry | None = None,
                     size: int = 1) -> Path:
    """Write :func:`blade_mesh` to an Abaqus ``.inp`` file with all its groups.

    Volume cells are ``C3D8``, facets ``S4`` (read back as ``quad`` by meshio; for
    Abaqus itself, turn them into surfaces). Every group is one ``*ELSET`` (global
    element numbers, so composite groups spanning several facet blocks survive the
    round trip through ``meshio.read``, which meshio's own writer does not ensure)
    and one ``*NSET``. For ParaView, write ``blade_mesh(...)`` with ``meshio.write``.

    Returns
    -------
    Path of the written file
    """
    path = Path(path)
    if path.suffix.lower() != ".inp":
        raise ValueError(f"write_blade_mesh: {path}: use an Abaqus .inp file name (it keeps "
                         "the named groups)")
    g = BladeGeometry() if geometry is None else geometry
    mesh = blade_mesh(g, size)
    offsets = np.cumsum([0] + [len(b.data) for b in mesh.cells])
    with open(path, "w") as f:
        f.write(f"*HEADING\nrom.blade size={size} {g}\n*NODE\n")
        n = len(mesh.points)
        np.savetxt(f, np.column_stack([np.arange(1, n + 1), mesh.points]),
                   fmt=["%d", "%.16e", "%.16e", "%.16e"], delimiter=", ")
        for b, block in enumerate(mesh.cells):
            f.write(f"*ELEMENT, TYPE={'C3D8' if block.type == 'hexahedron' else 'S4'}\n")
            ids = np.arange(offsets[b], offsets[b + 1]) + 1
            np.savetxt(f, np.column_stack([ids, block.data + 1]), fmt="%d", delimiter=", ")
        for name, per_block in mesh.cell_sets.items():
            f.write(f"*ELSET, ELSET={name}\n")
            _write_ids(f, np.concatenate([idx + offsets[b] for b, idx in enumerate(per_block)]))
        for name, idx in mesh.point_sets.items():
            f.write(f"*NSET, NSET={name}\n")
            _write_ids(f, idx)
    return path


def _write_ids(f, ids: np.ndarray) -> None:
    """0-based ids as 1-based Abaqus data lines of 16 entries."""
    ids = np.asarray(ids, np.int64) + 1
    full = len(ids) // 16 * 16
    if full:
        np.savetxt(f, ids[:full].reshape(-1, 16), fmt="%d", delimiter=", ")
    if len(ids) > full:
        f.write(", ".join(str(i) for i in ids[full:]) + "\n")

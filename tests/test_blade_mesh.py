"""Turbine-blade mesh generator (rom.blade): counts, validity, volume, groups, file round trip.

The volume is checked against an estimate built here from the NACA formulas (not from
the generator's code): normal-offset section area A = int 2 y_t sqrt(1 + y_c'^2) dx,
prismatoid rule for the ruled blends, exact rectangles.
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from rom.blade import (
    CHORD_CLUSTERING,
    COMPOSITES,
    SURFACES,
    BladeGeometry,
    blade_mesh,
    hex_quality,
    write_blade_mesh,
)
from rom.fom.mesh import FEMesh
from rom.io.mesh import read_mesh
from rom.meshes import _HEX_REF, hex8_volumes

G = BladeGeometry()
CASE_MESH = Path(__file__).resolve().parents[1] / "cases" / "blade" / "mesh.inp"


@pytest.fixture(scope="module")
def meshes():
    return {s: blade_mesh(G, s) for s in (1, 2)}


def _blocks(mesh):
    return {name: b.data for name, b in zip(("volume",) + SURFACES, mesh.cells)}


def _vector_areas(P, quads):
    """Exact vector area of bilinear quads: (d13 x d24) / 2, (n, 3)."""
    X = P[quads]
    return 0.5 * np.cross(X[:, 2] - X[:, 0], X[:, 3] - X[:, 1])


def _areas(P, quads):
    """Area of planar (or nearly planar) quads as two triangles."""
    X = P[quads]
    return 0.5 * (np.linalg.norm(np.cross(X[:, 1] - X[:, 0], X[:, 2] - X[:, 0]), axis=1)
                  + np.linalg.norm(np.cross(X[:, 2] - X[:, 0], X[:, 3] - X[:, 0]), axis=1))


def _trilinear(X, xi):
    """Points (n, 3) of the trilinear maps of hexes X (n, 8, 3) at reference point xi (3,)."""
    return np.einsum("a,cai->ci", np.prod(1 + _HEX_REF * xi, axis=1) / 8, X)


# ---------------------------------------------------------------- independent estimate
def _naca_t(x):
    t = G.thickness
    return 5 * t * (0.2969 * np.sqrt(x) - 0.1260 * x - 0.3516 * x**2 + 0.2843 * x**3
                    - 0.1036 * x**4)


def _yt(x):
    """Documented half thickness: tangent from (0, tmin/2) in front, >= tmin/2 aft of 0.5."""
    a = G.min_thickness / 2
    xf = np.linspace(1e-8, 0.2, 200001)
    y, dy = _naca_t(xf), np.gradient(_naca_t(xf), xf)
    xb = xf[np.argmin(abs(y - xf * dy - a))]
    y = np.where(x < xb, a + np.interp(xb, xf, dy) * x, _naca_t(x))
    return np.where(x >= 0.5, np.maximum(y, a), y)


def _camber_slope(x):
    m, p = G.camber, G.camber_position
    return np.where(x < p, 2 * m / p**2 * (p - x), 2 * m / (1 - p)**2 * (p - x))


def _unit_area():
    x = (1 - np.cos(np.linspace(0, np.pi, 400001))) / 2
    return np.trapezoid(2 * _yt(x) * np.sqrt(1 + _camber_slope(x) ** 2), x)


def _volume_estimate():
    g, c, r = G, G.chord, G.taper
    Lr, Wr, Lp, Wp = g.root_length, g.root_width, g.platform_length, g.platform_width
    root = Lr * Wr * g.root_height
    shank = g.shank_height / 6 * (Lr * Wr + (Lr + Lp) * (Wr + Wp) + Lp * Wp)   # prismatoid
    slab = Lp * Wp * g.platform_thickness
    A_hub = _unit_area() * c**2
    airfoil = A_hub * g.span * (1 + r + r * r) / 3                       # chord linear in z
    # fillet: area(f) = (1-f)^2 A_R + f^2 A_W + f (1-f) M for the node-wise blend of the
    # rectangle R(s, t) and the hub section W(s, t); M = Lp int dWy/dt + Wp int dWx/ds
    s = np.linspace(0, 1, 200001)
    xs = CHORD_CLUSTERING * (1 - np.cos(np.pi * s)) / 2 + (1 - CHORD_CLUSTERING) * s
    th = np.arctan(_camber_slope(xs))
    M = Lp * c * np.trapezoid(2 * _yt(xs) * np.cos(th + g.stagger), s) \
        + Wp * c * math.cos(g.stagger)           # LE and TE flats centred on the camber line
    fillet = g.fillet_height * (Lp * Wp / 3 + A_hub / 3 + M / 6)
    return root + shank + slab + fillet + airfoil


# ---------------------------------------------------------------- tests
def test_counts_per_size(meshes):
    for s, (nodes, cells) in {1: (3528, 2760), 2: (25051, 22080)}.items():
        m = meshes[s]
        assert len(m.points) == nodes == (20 * s + 1) * (6 * s + 1) * (23 * s + 1)
        assert len(m.cells[0].data) == cells
    assert 3 * len(meshes[1].points) == 10584                     # ~1e4 dofs at size 1
    assert 3 * (20 * 5 + 1) * (6 * 5 + 1) * (23 * 5 + 1) == 1089588   # ~1e6 dofs at size 5


def test_positive_jacobian_at_every_node_and_gauss_point(meshes):
    for size, m in meshes.items():
        P, C = m.points, m.cells[0].data
        assert np.unique(P[:, 2]).size == 23 * size + 1              # one z per k layer
        X = P[C]                                                  # (n, 8, 3)
        for corner in _HEX_REF:                                   # J exact by central differences
            J = np.stack([_trilinear(X, corner + 0.5 * e) - _trilinear(X, corner - 0.5 * e)
                          for e in np.eye(3)], axis=2)
            assert np.linalg.det(J).min() > 0
        hex8_volumes(P, C)                                        # raises if det J <= 0 at a Gauss point
        sj, ar = hex_quality(P, C)
        assert sj.min() > 0.1 and ar.max() < 140


def test_volume_against_naca_estimate_and_converges(meshes):
    V = _volume_estimate()
    assert V == pytest.approx(1.37955e-5, rel=1e-4)
    err = {s: abs(hex8_volumes(m.points, m.cells[0].data).sum() - V) / V
           for s, m in meshes.items()}
    assert err[1] < 1.5e-3 and err[2] < 4e-4 and err[2] < err[1] / 3     # O(h^2)


def test_group_areas(meshes):
    g = G
    for size, m in meshes.items():
        P, b = m.points, _blocks(m)
        assert _areas(P, b["root"]).sum() == pytest.approx(g.root_length * g.root_width, rel=1e-12)
        assert _areas(P, b["platform_sides"]).sum() == pytest.approx(
            2 * (g.platform_length + g.platform_width) * g.platform_thickness, rel=1e-12)
        slant = [math.hypot(g.shank_height, (g.platform_width - g.root_width) / 2),
                 math.hypot(g.shank_height, (g.platform_length - g.root_length) / 2)]
        shank = (g.root_length + g.platform_length) * slant[0] \
            + (g.root_width + g.platform_width) * slant[1]       # 4 planar trapezoids
        assert _areas(P, b["cooling"]).sum() == pytest.approx(
            2 * (g.root_length + g.root_width) * g.root_height + shank, rel=1e-12)
        tip = _unit_area() * (g.taper * g.chord) ** 2
        assert _areas(P, b["tip"]).sum() == pytest.approx(tip, rel=4e-3 / size**2)   # polygon
        flat = g.min_thickness * g.chord * g.span * (1 + g.taper) / 2   # flat edges x span
        for edge in ("leading_edge", "trailing_edge"):                  # (twisted strips: a
            assert _areas(P, b[edge]).sum() == pytest.approx(flat, rel=1e-2)   # bit longer)
        assert np.allclose(P[np.unique(b["root"]), 2], g.z_root)
        assert np.allclose(P[np.unique(b["tip"]), 2], g.span)


def test_groups_partition_the_boundary_with_outward_normals(meshes):
    for m in meshes.values():
        P, b = m.points, _blocks(m)
        cells = b["volume"]
        local = np.array([[0, 3, 2, 1], [4, 5, 6, 7], [0, 1, 5, 4], [1, 2, 6, 5], [2, 3, 7, 6],
                          [3, 0, 4, 7]])
        faces = cells[:, local].reshape(-1, 4)
        key = np.sort(faces, axis=1)
        _, inv, cnt = np.unique(key, axis=0, return_inverse=True, return_counts=True)
        boundary = {tuple(k) for k in key[cnt[inv.ravel()] == 1]}
        groups = np.concatenate([b[n] for n in SURFACES])
        assert len(groups) == len(boundary)                      # disjoint ...
        assert {tuple(k) for k in np.sort(groups, axis=1)} == boundary   # ... and complete
        va = _vector_areas(P, groups)
        total = np.linalg.norm(va, axis=1).sum()
        assert np.linalg.norm(va.sum(axis=0)) < 1e-13 * total    # closed surface
        # owner element of each group facet: sort both facet lists by sorted nodes
        owner = np.repeat(np.arange(len(cells)), 6)[cnt[inv.ravel()] == 1]
        order = np.lexsort(np.sort(groups, axis=1).T[::-1])
        border = np.lexsort(key[cnt[inv.ravel()] == 1].T[::-1])
        centre = np.empty((len(groups), 3))
        centre[order] = P[cells[owner[border]]].mean(axis=1)
        assert np.all(np.einsum("ij,ij->i", va, P[groups].mean(axis=1) - centre) > 0)   # outward


def test_pressure_side_is_concave_and_pressure_pushes_towards_suction_side(meshes):
    m = meshes[2]
    P, b = m.points, _blocks(m)
    p = 1.0e6
    force = -p * _vector_areas(P, b["pressure_side"]).sum(axis=0)     # pressure on outward n
    mid = G.stagger + G.twist / 2
    towards_suction = np.array([-math.sin(mid), math.cos(mid), 0.0])
    mean_chord = G.chord * (1 + G.taper) / 2
    assert force @ towards_suction > 0.9 * p * mean_chord * G.span     # ~ p x projected area
    suction = -p * _vector_areas(P, b["suction_side"]).sum(axis=0)
    assert suction @ towards_suction < -0.9 * p * mean_chord * G.span
    # hub section, chord frame: the pressure side bulges towards the suction side (concave)
    hub = np.unique(b["pressure_side"])
    hub = hub[abs(P[hub, 2]) < 1e-12]
    c, s = math.cos(G.stagger), math.sin(G.stagger)
    xy = P[hub, :2] @ np.array([[c, -s], [s, c]])                      # rotate by -stagger
    xy = xy[np.argsort(xy[:, 0])]
    x0 = xy[0, 0]
    u = (xy[:, 0] - x0) / G.chord
    aft = (u > 0.3) & (u < 0.9)
    a, z = xy[aft][0], xy[aft][-1]
    chord_line = a[1] + (xy[aft, 0] - a[0]) * (z[1] - a[1]) / (z[0] - a[0])
    assert np.all(xy[aft, 1][1:-1] > chord_line[1:-1])


def test_write_read_back_through_femesh(meshes, tmp_path):
    path = write_blade_mesh(tmp_path / "blade.inp", G, 1)
    mesh = meshes[1]
    fm = FEMesh.from_meshio(read_mesh(path), source=str(path))
    assert fm.n_nodes == 3528 and fm.n_elements == 2760
    assert np.allclose(fm.points, mesh.points, rtol=0, atol=1e-15)
    expected = set(SURFACES) | set(COMPOSITES) | {"volume", "root_midline", "root_center"}
    assert set(fm.groups) == expected
    b = _blocks(mesh)
    for name in SURFACES:
        assert np.array_equal(fm.groups[name].nodes, np.unique(b[name]))
        facets = fm.surface(name)["quad"]
        assert len(facets) == len(b[name])
        # FEMesh re-orients facets from the volume element: same normals as written
        assert np.allclose(_vector_areas(fm.points, facets), _vector_areas(mesh.points, b[name]))
    airfoil = fm.surface("airfoil")["quad"]
    assert len(airfoil) == sum(len(b[n]) for n in COMPOSITES["airfoil"])
    assert np.array_equal(fm.groups["airfoil"].nodes, mesh.point_sets["airfoil"])
    assert len(fm.groups["volume"].elements) == 2760


def test_bundled_case_mesh_is_the_size_1_mesh(meshes):
    fm = FEMesh.from_meshio(read_mesh(CASE_MESH), source=str(CASE_MESH))
    assert np.allclose(fm.points, meshes[1].points, rtol=0, atol=1e-15)
    assert set(SURFACES) | {"airfoil", "volume"} <= set(fm.groups)
    assert len(fm.groups["root"].nodes) == 21 * 7


@pytest.mark.parametrize("kwargs, match", [
    ({"thickness": 1.5}, "thickness must be in"),
    ({"thickness": 0.0}, "thickness must be in"),
    ({"min_thickness": 0.12}, "min_thickness"),
    ({"chord": -0.03}, "chord must be > 0"),
    ({"span": float("nan")}, "span must be a finite number"),
    ({"camber_position": 1.2}, "camber_position"),
    ({"platform_width": 0.012}, "must fit inside the platform"),
    ({"root_width": 0.03}, "root block must fit under the platform"),
    ({"hub_radius": 0.01}, "hub_radius"),
    ({"twist": 2.0}, "twist"),
])
def test_bad_geometry_raises(kwargs, match):
    with pytest.raises(ValueError, match=match):
        BladeGeometry(**kwargs)


@pytest.mark.parametrize("size", [0, -1, 1.5, True, "2"])
def test_bad_size_raises(size):
    with pytest.raises(ValueError, match="size must be an integer >= 1"):
        blade_mesh(G, size)


def test_writer_wants_inp(tmp_path):
    with pytest.raises(ValueError, match=r"\.inp"):
        write_blade_mesh(tmp_path / "blade.vtu")


def test_axis():
    g = BladeGeometry(hub_radius=0.3)
    assert g.axis_point == (0.0, 0.0, -0.3) and g.axis_direction == (1.0, 0.0, 0.0)
    assert g.z_root == pytest.approx(-(0.003 + 0.002 + 0.004 + 0.015))


def test_root_supports_lie_on_the_root_face_mid_line_and_centre():
    from rom.blade import BladeGeometry, blade_mesh
    g = BladeGeometry()
    m = blade_mesh(size=2)
    line = m.points[m.point_sets["root_midline"]]
    centre = m.points[m.point_sets["root_center"]]
    np.testing.assert_allclose(line[:, 1:], [[0.0, g.z_root]] * len(line), atol=1e-15)
    np.testing.assert_allclose(np.sort(line[:, 0])[[0, -1]], [-g.root_length / 2,
                                                             g.root_length / 2])
    np.testing.assert_allclose(centre, [[0.0, 0.0, g.z_root]], atol=1e-15)
    assert set(m.point_sets["root_midline"]) <= set(m.point_sets["root"])

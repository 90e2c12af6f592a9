"""FE kernels: reference elements, geometry, patch test and free thermal expansion (serial, scipy)."""
from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse.linalg as spla

from rom.fom import kernels
from rom.fom.discretization import ElementSet
from rom.fom.elements import ELEMENTS, FACETS, shape_at
from rom.fom.mesh import FEMesh
from rom.fom.serial import assemble_matrix, assemble_vector
from rom.materials import Table, ThermoElastic
from rom.meshes import solid_block

_REF_NODES = {
    "tetra": np.array([[0, 0, 0], [1, 0, 0], [0, 1, 0], [0, 0, 1]], float),
    "hexahedron": np.array([[-1, -1, -1], [1, -1, -1], [1, 1, -1], [-1, 1, -1],
                            [-1, -1, 1], [1, -1, 1], [1, 1, 1], [-1, 1, 1]], float),
}
_v = _REF_NODES["tetra"]
_REF_NODES["tetra10"] = np.concatenate([_v, 0.5 * (_v[[0, 1, 0, 0, 1, 2]] + _v[[1, 2, 2, 3, 3, 3]])])
_REF_NODES["triangle"] = np.array([[0, 0], [1, 0], [0, 1]], float)
_REF_NODES["triangle6"] = np.array([[0, 0], [1, 0], [0, 1], [0.5, 0], [0.5, 0.5], [0, 0.5]], float)
_REF_NODES["quad"] = np.array([[-1, -1], [1, -1], [1, 1], [-1, 1]], float)
_VOLUME = {"tetra": 1 / 6, "tetra10": 1 / 6, "hexahedron": 8.0, "triangle": 0.5,
           "triangle6": 0.5, "quad": 4.0}


@pytest.mark.parametrize("name", list(ELEMENTS) + list(FACETS))
def test_reference_elements(name):
    et = ELEMENTS.get(name) or FACETS[name]
    assert np.allclose(et.N.sum(axis=1), 1.0, atol=1e-14)
    assert np.allclose(et.dN.sum(axis=1), 0.0, atol=1e-13)
    assert np.isclose(et.weights.sum(), _VOLUME[name], rtol=1e-14)
    N, _dN = shape_at(et, _REF_NODES[name])
    assert np.allclose(N, np.eye(et.n_nodes), atol=1e-14)          # Kronecker property
    h = 1e-6                                                        # gradients by differences
    for d in range(et.dim):
        e = np.zeros(et.dim)
        e[d] = h
        fd = (shape_at(et, et.points + e)[0] - shape_at(et, et.points - e)[0]) / (2 * h)
        assert np.allclose(fd, et.dN[:, :, d], atol=1e-8)


@pytest.mark.parametrize("name", list(ELEMENTS))
def test_faces_point_outward(name):
    et = ELEMENTS[name]
    X = _REF_NODES[name] * np.array([1.0, 2.0, 0.5]) + 0.3   # an affine, positive map
    (ftype, local), = et.faces
    nw = kernels.facet_normals(X[local], FACETS[ftype])      # (faces, q, 3)
    out = X[local].mean(axis=1) - X[:et.corners].mean(axis=0)
    assert np.all(np.einsum("fqi,fi->fq", nw, out) > 0)
    assert np.allclose(nw.sum(axis=(0, 1)), 0.0, atol=1e-13)   # closed surface


def _linear_field(P):
    A = np.array([[1.0, 0.3, -0.2], [0.1, -0.5, 0.4], [0.25, 0.2, 0.7]]) * 1e-3
    return P @ A.T + np.array([1e-4, -2e-4, 3e-4]), A


@pytest.mark.parametrize("cell", ["tetra", "tetra10", "hexahedron"])
def test_patch_test_distorted(cell):
    """Linear displacement on the boundary: interior displacement exact to 1e-10, stress constant."""
    mesh = FEMesh.from_meshio(solid_block((3, 3, 3), cell=cell, distort=0.25, seed=3))
    es = ElementSet(mesh)
    assert np.isclose(es.weights().sum(), 1.0, rtol=1e-12)
    law = ThermoElastic(E=200e9, nu=0.3)
    n = mesh.n_nodes
    T = np.full(es.n_qp, law.T_ref)
    zeros = np.zeros((es.n_qp, 6))
    out = es.evaluate(law, np.zeros((n, 3)), zeros, zeros[:, :0], T, 1.0)
    K = assemble_matrix([b.dofs for b in es.blocks], out["Ke"], 3 * n)
    exact, A = _linear_field(mesh.points)
    bnd = np.unique(np.concatenate([mesh.group(g).nodes for g in
                                    ("xmin", "xmax", "ymin", "ymax", "zmin", "zmax")]))
    fixed = (3 * bnd[:, None] + np.arange(3)).ravel()
    free = np.setdiff1d(np.arange(3 * n), fixed)
    assert len(free) > 0
    u = np.zeros(3 * n)
    u[fixed] = exact.ravel()[fixed]
    u[free] = spla.spsolve(K[free][:, free].tocsc(), -K[free][:, fixed] @ u[fixed])
    err = np.abs(u - exact.ravel()).max() / np.abs(exact).max()
    assert err < 1e-10, err
    res = es.evaluate(law, u.reshape(n, 3), zeros, zeros[:, :0], T, 1.0)
    eps = np.array([A[0, 0], A[1, 1], A[2, 2], A[0, 1] + A[1, 0], A[1, 2] + A[2, 1],
                    A[0, 2] + A[2, 0]])
    assert np.allclose(res["strain"], eps, rtol=0, atol=1e-10 * np.abs(eps).max())
    # internal forces vanish at interior dofs and equal K u everywhere
    f = assemble_vector([b.dofs for b in es.blocks], res["fe"], 3 * n)
    assert np.allclose(f, K @ u, atol=1e-8 * np.abs(f).max())
    assert np.abs(f[free]).max() < 1e-8 * np.abs(f).max()


@pytest.mark.parametrize("cell", ["tetra", "tetra10", "hexahedron"])
def test_free_thermal_expansion(cell):
    """Uniform temperature rise, 3-2-1 supports: u = alpha dT x exactly, stresses at round-off."""
    L = (1.0, 0.6, 0.4)
    mesh = FEMesh.from_meshio(solid_block((3, 2, 2), cell=cell, lengths=L, distort=0.2))
    es = ElementSet(mesh)
    law = ThermoElastic(E=Table([300.0, 1000.0], [200e9, 150e9]), nu=0.3,
                        alpha=Table([300.0, 1000.0], [1.2e-5, 1.5e-5]), T_ref=300.0)
    T1 = 850.0
    n = mesh.n_nodes
    T = es.at_points(np.full(n, T1))
    zeros = np.zeros((es.n_qp, 6))
    out = es.evaluate(law, np.zeros((n, 3)), zeros, zeros[:, :0], T, 1.0)
    dofs = [b.dofs for b in es.blocks]
    K = assemble_matrix(dofs, out["Ke"], 3 * n)
    r = assemble_vector(dofs, out["fe"], 3 * n)
    P = mesh.points
    a = np.flatnonzero(np.all(abs(P) < 1e-12, axis=1))[0]
    b = np.flatnonzero(np.all(abs(P - [L[0], 0, 0]) < 1e-12, axis=1))[0]
    c = np.flatnonzero(np.all(abs(P - [0, L[1], 0]) < 1e-12, axis=1))[0]
    fixed = np.array([3 * a, 3 * a + 1, 3 * a + 2, 3 * b + 1, 3 * b + 2, 3 * c + 2])
    free = np.setdiff1d(np.arange(3 * n), fixed)
    u = np.zeros(3 * n)
    u[free] = spla.spsolve(K[free][:, free].tocsc(), -r[free])
    strain_th = law.alpha(T1) * (T1 - 300.0)
    assert np.abs(u.reshape(n, 3) - strain_th * P).max() < 1e-12 * strain_th
    res = es.evaluate(law, u.reshape(n, 3), zeros, zeros[:, :0], T, 1.0)
    scale = law.E(T1) * strain_th
    assert np.abs(res["stress"]).max() < 1e-9 * scale


@pytest.mark.parametrize("cell", ["tetra", "tetra10", "hexahedron"])
def test_strains_of_many_fields_equal_one_field_at_a_time(cell):
    """ElementSet.strains_many (reduced-basis modes, enrichment) is strains() column by
    column, on a distorted mesh and with element chunks smaller than the mesh."""
    mesh = FEMesh.from_meshio(solid_block((3, 2, 2), cell=cell, distort=0.2, seed=3))
    es = ElementSet(mesh)
    U = np.random.default_rng(1).standard_normal((3 * mesh.n_nodes, 5))
    ref = np.stack([es.strains(U[:, i].reshape(-1, 3)) for i in range(U.shape[1])])
    got = es.strains_many(U)
    assert got.shape == (5, es.n_qp, 6)
    np.testing.assert_allclose(got, ref, rtol=0, atol=1e-13 * np.abs(ref).max())
    b = es.blocks[0]
    small = kernels.strains_many(b.dNdx, U.reshape(-1, 3, 5)[b.cells], chunk=3)
    np.testing.assert_allclose(small.reshape(5, -1, 6), got[:, b.rows], atol=1e-13 * np.abs(ref).max())


@pytest.mark.parametrize("cell", ["tetra10", "hexahedron"])
def test_stiffness_independent_of_the_element_chunks(cell):
    """kernels.stiffness by chunks of elements (bounded scratch) equals one chunk of all
    elements and the quadrature sum of B^T D B written out, whatever the chunk size."""
    mesh = FEMesh.from_meshio(solid_block((3, 2, 2), cell=cell, distort=0.2, seed=4))
    b = ElementSet(mesh).blocks[0]
    A = np.random.default_rng(2).standard_normal((len(b.cells),) + b.wdetJ.shape[1:] + (6, 6))
    D = A @ np.swapaxes(A, -1, -2)
    B = kernels.b_matrix(b.dNdx)
    ref = np.einsum("eqki,eqkl,eqlj,eq->eij", B, D, B, b.wdetJ)
    for chunk in (1, 100, 1 << 16, 1 << 30):  # one element per chunk .. all at once
        K = kernels.stiffness(b.dNdx, b.wdetJ, D, chunk=chunk)
        np.testing.assert_allclose(K, ref, rtol=0, atol=1e-12 * np.abs(ref).max())

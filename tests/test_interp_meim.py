"""Matrix and vector EIM (rom.interp.meim): exactness, decay, hooks, rank independence."""
from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
from mpi4py import MPI

from rom.interp import matrix_eim, vector_eim
from rom.interp.problems import gaussian_heat, thermal_block
from rom.parallel import even_split

EPS = np.finfo(float).eps


@pytest.fixture(scope="module")
def smooth():
    return gaussian_heat(10, width=0.5)          # 81 unknowns, smooth in mu


def _rows(n, comm):
    off = even_split(n, comm.size)
    return int(off[comm.rank]), int(off[comm.rank + 1])


@pytest.mark.mpi
def test_matrix_eim_equals_serial_at_any_rank_count(comm, smooth):
    P = smooth.sample(24, seed=3)
    ref = matrix_eim(smooth.assemble, P, comm=MPI.COMM_SELF, tol=1e-9)
    lo, hi = _rows(smooth.n_dofs, comm)
    dist = matrix_eim(lambda mu: smooth.assemble(mu)[lo:hi], P, comm=comm, tol=1e-9)
    # bitwise: every operation on entries is elementwise or an exact max
    for name in ("magic_rows", "magic_cols", "selected", "B", "C", "errors", "training_gamma"):
        assert np.array_equal(getattr(ref, name), getattr(dist, name)), name
    mu = np.array([0.37, 0.61])
    a_ref, _ = ref.magic_values(mu, assemble=smooth.assemble)
    a_hook, cost = dist.magic_values(mu, entries=smooth.matrix_entries)
    a_asm, cost2 = dist.magic_values(mu, assemble=lambda m: smooth.assemble(m)[lo:hi])
    assert cost.method == "entries" and cost.assembled_nnz == 0
    assert cost2.method == "assembly" and cost2.assembled_nnz == smooth.assemble(mu).nnz
    np.testing.assert_allclose(a_hook, a_ref, rtol=1e-13, atol=1e-13)
    assert np.array_equal(a_asm, a_ref)
    err_ref = ref.interpolation_error(smooth.assemble(mu))
    err = dist.interpolation_error(smooth.assemble(mu)[lo:hi])
    assert err == err_ref


@pytest.mark.mpi
def test_vector_eim_equals_serial_at_any_rank_count(comm, smooth):
    P = smooth.sample(24, seed=4)
    ref = vector_eim(smooth.rhs, P, comm=MPI.COMM_SELF, tol=1e-9)
    lo, hi = _rows(smooth.n_dofs, comm)
    dist = vector_eim(lambda mu: smooth.rhs(mu)[lo:hi], P, comm=comm, tol=1e-9)
    for name in ("magic_rows", "selected", "B", "C", "errors"):
        assert np.array_equal(getattr(ref, name), getattr(dist, name)), name
    mu = np.array([0.5, 0.25])
    v, _cost = dist.magic_values(mu, entries=smooth.rhs_entries)
    np.testing.assert_allclose(v, smooth.rhs(mu)[ref.magic_rows], rtol=1e-13)
    assert dist.interpolation_error(smooth.rhs(mu)[lo:hi]) == ref.interpolation_error(
        smooth.rhs(mu))


def test_affine_problem_is_exact_after_the_true_number_of_terms():
    tb = thermal_block(8, (2, 2))                 # A(mu) = sum_{p<4} mu_p K_p
    eim = matrix_eim(tb.assemble, tb.sample(30, seed=1), tol=1e-12)
    assert eim.n_terms == 4
    assert eim.errors[3] > 1e-3 and eim.errors[4] <= 100 * EPS
    for mu in tb.sample(5, seed=9):
        assert eim.interpolation_error(tb.assemble(mu)) <= 100 * EPS
    # re-expression on the training matrices: A(mu) = sum_l beta_l A(mu_l)
    mu = np.array([0.3, 2.0, 7.0, 1.1])
    beta = eim.beta(eim.magic_values(mu, assemble=tb.assemble)[0])
    A = sum(b * eim.training_matrix(l) for l, b in enumerate(beta))
    assert abs(A - tb.assemble(mu)).max() <= 1e-12 * abs(tb.assemble(mu)).max()
    # reduced matrices: V^T Q_m V = sum_l C[l, m] V^T A(mu_l) V
    V = np.random.default_rng(0).standard_normal((tb.n_dofs, 3))
    Pq, Pa = eim.project(V, V), eim.project(V, V, which="training")
    np.testing.assert_allclose(Pq, np.einsum("lm,lij->mij", eim.C, Pa), rtol=1e-10, atol=1e-10)
    rhs = vector_eim(tb.rhs, tb.sample(10), tol=1e-12)
    assert rhs.n_terms == 1                       # constant source


def test_eim_error_decreases_exponentially_for_smooth_dependence(smooth):
    eim = matrix_eim(smooth.assemble, smooth.sample(80, seed=2), tol=1e-10)
    e = eim.errors
    M = np.arange(1, len(e))
    slope = np.polyfit(M, np.log10(np.maximum(e[1:], 1e-16)), 1)[0]
    assert slope < -0.15, f"decay rate 10^{slope:.3f} per term is not exponential enough"
    assert e[-1] <= 1e-10 and np.all(np.minimum.accumulate(e) <= 3 * e[0])
    # held-out error follows the training error
    held = [eim.interpolation_error(smooth.assemble(mu)) for mu in smooth.sample(5, seed=11)]
    assert max(held) < 1e-7
    # nested interpolants: fewer terms, larger error
    mu = smooth.sample(1, seed=12)[0]
    errs = [eim.interpolation_error(smooth.assemble(mu), n_terms=m) for m in (5, 15, 30)]
    assert errs[0] > errs[1] > errs[2]


@pytest.mark.mpi
def test_union_of_patterns(comm, rng):
    n = 40
    mats = [sp.random(n, n, density=0.1, random_state=s, format="csr") + sp.eye(n)
            for s in range(3)]

    def A(mu):   # the pattern of each member depends on which theta vanish
        th = [mu[0], mu[1] if mu[1] > 0.5 else 0.0, np.sin(mu[0] + mu[1])]
        out = sum(t * M for t, M in zip(th, mats) if t != 0.0)
        return sp.csr_matrix(out)

    P = np.random.default_rng(0).uniform(0.0, 1.0, (15, 2))
    lo, hi = _rows(n, comm)
    ref = matrix_eim(A, P, comm=MPI.COMM_SELF, tol=1e-12)
    dist = matrix_eim(lambda mu: A(mu)[lo:hi], P, comm=comm, tol=1e-12)
    assert ref.n_terms == 3 and np.array_equal(ref.magic_rows, dist.magic_rows)
    assert max(ref.interpolation_error(A(mu)) for mu in P) < 1e-13


def test_bad_input_raises_clear_errors(smooth):
    P = smooth.sample(4)
    with pytest.raises(ValueError, match="tol"):
        matrix_eim(smooth.assemble, P, tol=2.0)
    with pytest.raises(ValueError, match="NaN"):
        matrix_eim(smooth.assemble, np.array([[0.5, np.nan]]))
    with pytest.raises(ValueError, match="contains NaN"):
        matrix_eim(lambda mu: smooth.assemble(mu) * np.nan, P)
    with pytest.raises(ValueError, match="different local shapes"):
        matrix_eim([smooth.assemble(P[0]), smooth.assemble(P[1])[:5]], P[:2])
    with pytest.raises(ValueError, match="members given"):
        vector_eim([smooth.rhs(P[0])], P)
    eim = matrix_eim(smooth.assemble, P)
    with pytest.raises(ValueError, match="magic values"):
        eim.coefficients(np.zeros(eim.n_terms + 1))
    with pytest.raises(ValueError, match="entries"):
        eim.magic_values(P[0])


def test_petsc_matrices_are_converted_when_petsc4py_is_importable(smooth):
    PETSc = pytest.importorskip("petsc4py.PETSc")
    P = smooth.sample(6)

    def petsc_assemble(mu):
        A = smooth.assemble(mu)
        return PETSc.Mat().createAIJ(size=A.shape, csr=(A.indptr, A.indices, A.data),
                                     comm=PETSc.COMM_SELF)

    ref = matrix_eim(smooth.assemble, P, tol=1e-9)
    eim = matrix_eim(petsc_assemble, P, tol=1e-9)
    assert np.array_equal(ref.magic_rows, eim.magic_rows) and np.array_equal(ref.B, eim.B)


def test_3d_q1_problem_hooks_match_assembly():
    p = gaussian_heat(4, dim=3, width=0.5)       # 27 unknowns, Q1 hexahedra
    A = p.assemble(np.array([0.5, 0.5, 0.5]))
    assert abs(A - A.T).max() <= 1e-15 and A.diagonal().min() > 0
    eim = matrix_eim(p.assemble, p.sample(10), tol=1e-8)
    mu = np.array([0.3, 0.4, 0.6])
    a, _ = eim.magic_values(mu, entries=p.matrix_entries)
    b, _ = eim.magic_values(mu, assemble=p.assemble)
    np.testing.assert_allclose(a, b, rtol=1e-13, atol=1e-15)
    rows = np.arange(0, p.n_dofs, 5)
    np.testing.assert_allclose(p.rhs_entries(mu, rows), p.rhs(mu)[rows], rtol=1e-13)

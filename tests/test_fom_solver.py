"""PETSc mechanics: Lame cylinder convergence, rank independence, Newton rate, bad cases."""
from __future__ import annotations

import meshio
import numpy as np
import pytest
from mpi4py import MPI

pytest.importorskip("petsc4py")

import itertools
import sys

from rom.fom.elements import UnknownElementError, shape_at
from rom.fom.loads import Centrifugal, Dirichlet, Loads, Pressure
from rom.fom.mesh import FEMesh, GroupError
from rom.fom.solver import ConvergenceError, MechanicalSolver, NewtonOptions
from rom.materials import MaterialError, Norton, Table, ThermoElastic
from rom.meshes import solid_block, thick_cylinder
from rom.parallel import UserError

SELF = MPI.COMM_SELF
TIGHT = {"ksp_rtol": 1e-13, "ksp_atol": 1e-30}


def _duffy(n: int):
    """Collapsed Gauss rule on the unit tetrahedron, exact to degree 2n - 3."""
    p, w = np.polynomial.legendre.leggauss(n)
    p, w = 0.5 * (p + 1), 0.5 * w
    U, V, W = np.meshgrid(p, p, p, indexing="ij")
    WU, WV, WW = np.meshgrid(w, w, w, indexing="ij")
    x = np.stack([U, V * (1 - U), W * (1 - U) * (1 - V)], axis=-1).reshape(-1, 3)
    return x, (WU * WV * WW * (1 - U) ** 2 * (1 - V)).ravel()


def _l2_error(mesh: FEMesh, u: np.ndarray, exact) -> float:
    """Relative L2 norm of u_h - u over the mesh (tets; curved isoparametric elements)."""
    xq, wq = _duffy(5)
    err2 = ref2 = 0.0
    for b in mesh.blocks:
        N, dN = shape_at(b.etype, xq)
        X = mesh.points[b.cells]
        x = np.einsum("qa,eai->eqi", N, X)
        det = np.linalg.det(np.einsum("qad,eai->eqid", dN, X))
        uh = np.einsum("qa,eai->eqi", N, u[b.cells])
        ue = exact(x.reshape(-1, 3)).reshape(x.shape)
        err2 += np.einsum("eq,q,eqi->", det, wq, (uh - ue) ** 2)
        ref2 += np.einsum("eq,q,eqi->", det, wq, ue**2)
    return float(np.sqrt(err2 / ref2))


def _lame(cell: str, n: int, comm=SELF):
    a, b, p, E, nu = 1.0, 2.0, 100e6, 200e9, 0.3
    mesh = FEMesh.from_meshio(thick_cylinder(a, b, 0.25, (n, 2 * n, 1), cell=cell))
    loads = Loads(dirichlet=[Dirichlet("theta0", (1,)), Dirichlet("theta1", (0,)),
                             Dirichlet("zmin", (2,)), Dirichlet("zmax", (2,))],
                  pressure=[Pressure("inner", p)])
    solver = MechanicalSolver(mesh, ThermoElastic(E, nu), loads, comm=comm, petsc_options=TIGHT,
                              newton=NewtonOptions(rtol=1e-12))
    T = np.full(mesh.n_nodes, 293.15)
    state = solver.step(solver.initial_state(), T, 1.0)
    solver.destroy()

    def exact(x):  # plane strain Lame solution
        r = np.hypot(x[:, 0], x[:, 1])
        ur = (1 + nu) / E * p * a**2 / (b**2 - a**2) * ((1 - 2 * nu) * r + b**2 / r)
        return np.column_stack([ur * x[:, 0] / r, ur * x[:, 1] / r, np.zeros(len(r))])

    return _l2_error(mesh, state.u, exact), state


@pytest.mark.parametrize("cell, sizes, expected", [("tetra", (2, 4, 8), 2.0),
                                                   ("tetra10", (1, 2, 4), 3.0)])
def test_lame_cylinder_convergence_rate(cell, sizes, expected):
    errors = np.array([_lame(cell, n)[0] for n in sizes])
    rates = np.log2(errors[:-1] / errors[1:])
    print(f"\nLame {cell}: L2 errors {errors}, rates {rates}")
    assert errors[-1] < (2e-2 if cell == "tetra" else 2e-3)
    assert rates[-1] > expected - 0.25, rates


def _hot_spinning_block(comm, cell="tetra", partition="auto"):
    mesh = FEMesh.from_meshio(solid_block((3, 2, 2), cell=cell, lengths=(0.03, 0.02, 0.02),
                                          distort=0.2, seed=5))
    law = Norton(E=Table([300.0, 1200.0], [200e9, 140e9]), nu=0.3,
                 alpha=Table([300.0, 1200.0], [1.2e-5, 1.6e-5]), T_ref=300.0,
                 K=Table([300.0, 1200.0], [900e6, 300e6]), n=Table([300.0, 1200.0], [4.0, 6.0]))
    loads = Loads(dirichlet=[Dirichlet("xmin")], pressure=[Pressure("xmax", -200e6)],
                  centrifugal=Centrifugal(2000.0, (-0.1, 0.0, 0.0), (0.0, 1.0, 0.0)),
                  density=8000.0, amplitude=lambda t: min(t, 1.0))
    solver = MechanicalSolver(mesh, law, loads, comm=comm, petsc_options=TIGHT,
                              newton=NewtonOptions(rtol=1e-11), partition=partition)
    x = mesh.points[:, 0]

    def temperature(t):
        return 300.0 + 600.0 * min(t, 1.0) * (1.0 + 10.0 * x)

    return solver, temperature


@pytest.mark.mpi
def test_same_displacement_on_any_rank_count(comm):
    times = np.array([0.0, 0.5, 1.0, 20.0, 100.0])
    solver, temp = _hot_spinning_block(comm)
    state = solver.solve(times, temp)
    p_all = solver.gather_points(state.internal[:, 6])
    info = solver.matrix_info()
    solver.destroy()
    ref = None
    if comm.rank == 0:  # serial reference, computed once and broadcast
        ref_solver, _ = _hot_spinning_block(SELF)
        ref = ref_solver.solve(times, temp)
        ref_solver.destroy()
    ref = comm.bcast(ref, root=0)
    scale = np.abs(ref.u).max()
    assert np.abs(state.u - ref.u).max() <= 1e-8 * scale
    assert np.allclose(p_all, ref.internal[:, 6], rtol=1e-7, atol=1e-8 * ref.internal[:, 6].max())
    assert ref.internal[:, 6].max() > 1e-4                       # the creep is real
    assert info["mallocs"] == 0


@pytest.mark.mpi
def test_rcb_fallback_partition_gives_the_same_solution(comm, monkeypatch):
    """Without pymetis (simulated: ``import pymetis`` raises ImportError), ``partition:
    auto`` falls back to recursive coordinate bisection and gives the serial solution."""
    monkeypatch.setitem(sys.modules, "pymetis", None)
    times = np.array([0.0, 1.0, 50.0])
    solver, temp = _hot_spinning_block(comm, partition="auto")
    state = solver.solve(times, temp)
    method = solver.part.method
    solver.destroy()
    assert method == ("serial" if comm.size == 1 else "rcb")
    ref = None
    if comm.rank == 0:
        ref_solver, _ = _hot_spinning_block(SELF)
        ref = ref_solver.solve(times, temp)
        ref_solver.destroy()
    ref = comm.bcast(ref, root=0)
    assert np.abs(state.u - ref.u).max() <= 1e-8 * np.abs(ref.u).max()


def test_newton_converges_quadratically_in_a_viscoplastic_step():
    solver, temp = _hot_spinning_block(SELF, cell="hexahedron")
    s1 = solver.step(solver.initial_state(), temp(1.0), 1.0)
    s2 = solver.step(s1, temp(1.0), 200.0)                      # long creep step: nonlinear
    solver.destroy()
    r = np.array(s2.newton) / s2.newton[0]
    print("\nNewton relative residuals:", r)
    assert 3 <= len(r) <= 8
    dp = s2.internal[:, 6] - s1.internal[:, 6]
    assert dp.max() > 1e-3                                      # strongly viscoplastic step
    # quadratic: once in the asymptotic range, r_{k+1} <= C r_k^2
    pairs = [(a, b) for a, b in itertools.pairwise(r) if a < 1e-2 and b > 1e-14]
    assert pairs, r
    assert all(b <= 100.0 * a**2 for a, b in pairs), r


def test_newton_from_a_guess_reaches_the_same_state_in_fewer_iterations():
    """``step(guess=)`` (an enrichment starts from the reduced prediction): a guess near
    the answer converges to the same state in fewer Newton iterations; a guess the Newton
    cannot start from (NaN: the material fails) is retried from the state and recorded;
    a guess of the wrong size is a UserError."""
    solver, temp = _hot_spinning_block(SELF, cell="hexahedron")
    s1 = solver.step(solver.initial_state(), temp(1.0), 1.0)
    cold = solver.step(s1, temp(1.0), 200.0, cuts=0)
    near = cold.u * (1.0 + 1e-3) + 1e-3 * np.abs(cold.u).max()
    warm = solver.step(s1, temp(1.0), 200.0, cuts=0, guess=near)
    print("\nNewton iterations cold / from the guess:", len(cold.newton), len(warm.newton))
    assert len(warm.newton) < len(cold.newton)
    assert np.abs(warm.u - cold.u).max() <= 1e-8 * np.abs(cold.u).max()
    assert np.abs(warm.internal - cold.internal).max() <= 1e-6 * np.abs(cold.internal).max()
    assert solver.guess_failures == []
    bad = np.full_like(cold.u, np.nan)
    again = solver.step(s1, temp(1.0), 200.0, cuts=0, guess=bad)
    assert solver.guess_failures == [200.0] and solver.cuts == []
    assert np.abs(again.u - cold.u).max() <= 1e-8 * np.abs(cold.u).max()
    with pytest.raises(UserError, match="guess must be the nodal displacements"):
        solver.step(s1, temp(1.0), 200.0, guess=cold.u[:-1])
    solver.destroy()


def test_inner_solver_options_reach_the_preconditioner_set_up():
    """Case options of the solvers a preconditioner creates at its set-up (``sub_*`` of
    ASM) are applied (they were dropped once: ASM ran ILU(0) for ``sub_pc_type cholesky``),
    do not stay in the options database, and give the same state as the default solver."""
    from petsc4py import PETSc
    solver, temp = _hot_spinning_block(SELF, cell="hexahedron")
    ref = solver.step(solver.initial_state(), temp(1.0), 1.0)
    solver.destroy()
    mesh, law, loads = solver.mesh, solver.material, solver.loads
    asm = MechanicalSolver(mesh, law, loads, comm=SELF, prefix="asmtest_",
                           petsc_options={**TIGHT, "pc_type": "asm", "sub_pc_type": "cholesky"},
                           newton=NewtonOptions(rtol=1e-11))
    st = asm.step(asm.initial_state(), temp(1.0), 1.0)
    sub = asm.ksp.getPC().getASMSubKSP()[0].getPC()
    assert sub.getType() == "cholesky"
    assert asm.log[0]["ksp_iterations"] <= 2              # one block: a direct solve
    assert not PETSc.Options().hasName("asmtest_sub_pc_type")
    asm.destroy()
    assert np.abs(st.u - ref.u).max() <= 1e-8 * np.abs(ref.u).max()


def test_bad_cases_give_one_clear_error():
    mesh = FEMesh.from_meshio(solid_block((1, 1, 1), cell="hexahedron"))
    with pytest.raises(GroupError, match="dirichlet group 'clamp' not found .*xmin"):
        MechanicalSolver(mesh, ThermoElastic(1e9, 0.3), Loads([Dirichlet("clamp")]), comm=SELF)
    with pytest.raises(GroupError, match="pressure group 'skin' not found"):
        MechanicalSolver(mesh, ThermoElastic(1e9, 0.3),
                         Loads([Dirichlet("xmin")], [Pressure("skin", 1.0)]), comm=SELF)
    wedge = meshio.Mesh(np.eye(3, 3).tolist() + [[0, 0, 0], [1, 1, 1], [0, 1, 1]],
                        [("wedge", np.array([[0, 1, 2, 3, 4, 5]]))])
    with pytest.raises(UnknownElementError, match="unsupported element type 'wedge'"):
        FEMesh.from_meshio(wedge, source="blade.msh")
    with pytest.raises(MaterialError, match="E: value -2e\\+11"):
        ThermoElastic(-200e9, 0.3)


def test_failing_step_is_cut_in_halves_and_equals_two_half_steps(monkeypatch):
    """A step that fails (here: any step longer than 120 s, as a solver would on a too
    nonlinear step) is halved until it passes; the result equals the explicit sub-steps
    with the temperature interpolated linearly in between; cuts=0 reports the failure."""
    solver, temp = _hot_spinning_block(SELF, cell="hexahedron")
    s1 = solver.step(solver.initial_state(), temp(1.0), 1.0)
    T0, T1 = temp(1.0), temp(1.0) + 50.0
    real = solver._step
    seen = []

    def fragile(state, T, t):
        seen.append((state.time, t, float(np.mean(T))))
        if t - state.time > 120.0:
            raise ConvergenceError(f"too long a step to t = {t}")
        return real(state, T, t)

    monkeypatch.setattr(solver, "_step", fragile)
    with pytest.raises(ConvergenceError, match="too long"):
        solver.step(s1, T1, 401.0, cuts=1)                # 200 s halves still fail
    seen.clear()
    cut = solver.step(s1, T1, 401.0, temperature_old=T0, cuts=3)
    assert cut.time == 401.0 and solver.cuts[-3:] == [401.0, 201.0, 401.0]
    done = [(a, b) for a, b, _ in seen if b - a <= 120.0]
    assert done == [(1.0, 101.0), (101.0, 201.0), (201.0, 301.0), (301.0, 401.0)]
    monkeypatch.setattr(solver, "_step", real)
    st = s1
    for k in range(1, 5):   # the same four sub-steps by hand
        st = solver.step(st, T0 + k / 4 * (T1 - T0), 1.0 + 100.0 * k, cuts=0)
    solver.destroy()
    assert np.abs(cut.u - st.u).max() <= 1e-10 * np.abs(st.u).max()
    assert np.abs(cut.internal - st.internal).max() <= 1e-6 * np.abs(st.internal).max()


def test_line_search_recovers_from_an_overshooting_direction(monkeypatch):
    """Newton corrections made three times too long (|1 - 3| = 2: the full-step iteration
    diverges) converge with backtracking, to the solution of the plain Newton; without
    line search the step fails."""
    solver, temp = _hot_spinning_block(SELF, cell="hexahedron")
    s1 = solver.step(solver.initial_state(), temp(1.0), 1.0)
    ref = solver.step(s1, temp(1.0), 200.0, cuts=0)
    real = solver._linear_solve

    def overshoot(eta, t, it):
        rec = real(eta, t, it)
        solver.du.scale(3.0)
        return rec

    monkeypatch.setattr(solver, "_linear_solve", overshoot)
    solver.newton = NewtonOptions(rtol=1e-11, max_iter=40, line_search=8)
    n0 = len(solver.log)
    st = solver.step(s1, temp(1.0), 200.0, cuts=0)
    alphas = [r["step_length"] for r in solver.log[n0:]]
    assert min(alphas) <= 0.5 and all(a in (1.0, 0.5, 0.25, 0.125) for a in alphas), alphas
    assert np.abs(st.u - ref.u).max() <= 1e-8 * np.abs(ref.u).max()
    assert np.abs(st.internal - ref.internal).max() <= 1e-6 * np.abs(ref.internal).max()
    solver.newton = NewtonOptions(rtol=1e-11, max_iter=40, line_search=0)
    with pytest.raises(ConvergenceError, match="Newton did not converge|material"):
        solver.step(s1, temp(1.0), 200.0, cuts=0)
    solver.destroy()


def test_newton_settings_survive_construction_and_read_snes_options():
    """Case-file Newton settings reach the solver; -snes_rtol / -snes_max_it /
    -rom_line_search under the prefix override them."""
    mesh = FEMesh.from_meshio(solid_block((1, 1, 1), cell="hexahedron"))
    law, loads = ThermoElastic(1e9, 0.3), Loads([Dirichlet("xmin")])
    s = MechanicalSolver(mesh, law, loads, comm=SELF,
                         newton=NewtonOptions(rtol=1e-6, line_search=0, max_cuts=1))
    assert (s.newton.rtol, s.newton.line_search, s.newton.max_cuts) == (1e-6, 0, 1)
    s.destroy()
    s = MechanicalSolver(mesh, law, loads, comm=SELF, prefix="t_",
                         petsc_options={"snes_rtol": "1e-5", "snes_max_it": "7",
                                        "rom_line_search": "3"},
                         newton=NewtonOptions(rtol=1e-6, line_search=0))
    assert (s.newton.rtol, s.newton.max_iter, s.newton.line_search) == (1e-5, 7, 3)
    s.destroy()

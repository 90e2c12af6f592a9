"""The full-order solver with the Chaboche law: cycles of tension and compression on a hot
block, the same on 1, 2 and 3 ranks, quadratic Newton with the non-symmetric tangent, and
the Norton answers when the hardening is zero."""
from __future__ import annotations

import itertools

import numpy as np
import pytest
from mpi4py import MPI

pytest.importorskip("petsc4py")

from rom.fom.loads import Dirichlet, Loads, Pressure
from rom.fom.mesh import FEMesh
from rom.fom.solver import MechanicalSolver, NewtonOptions
from rom.materials import Chaboche, Norton, Table
from rom.meshes import solid_block

SELF = MPI.COMM_SELF
TIGHT = {"ksp_rtol": 1e-13, "ksp_atol": 1e-30}
ELASTIC = {"E": Table([300.0, 1200.0], [200e9, 140e9]), "nu": 0.3,
           "alpha": Table([300.0, 1200.0], [1.2e-5, 1.6e-5]), "T_ref": 300.0}
VISCOUS = {"K": Table([300.0, 1200.0], [900e6, 300e6]), "n": Table([300.0, 1200.0], [6.0, 5.0])}
HARDENING = {"sigma_y": Table([300.0, 1200.0], [300e6, 120e6]), "Q": 40e6, "b": 10.0,
             "C1": 120e9, "D1": 1200.0, "C2": 10e9, "D2": 100.0}
PERIOD = 20.0


def _cycled_block(comm, law, cell="tetra"):
    """A clamped block pulled and pushed by +-350 MPa on its end (a sine of period 20 s),
    under a temperature gradient."""
    mesh = FEMesh.from_meshio(solid_block((3, 2, 2), cell=cell, lengths=(0.03, 0.02, 0.02),
                                          distort=0.2, seed=5))
    loads = Loads(dirichlet=[Dirichlet("xmin")], pressure=[Pressure("xmax", -350e6)],
                  amplitude=lambda t: np.sin(2 * np.pi * t / PERIOD))
    solver = MechanicalSolver(mesh, law, loads, comm=comm, petsc_options=TIGHT,
                              newton=NewtonOptions(rtol=1e-11))
    T = 900.0 + 3000.0 * mesh.points[:, 0]
    return solver, T


@pytest.mark.mpi
def test_cycles_are_the_same_on_any_rank_count(comm):
    times = np.linspace(0.0, 1.5 * PERIOD, 13)
    solver, T = _cycled_block(comm, Chaboche(**ELASTIC, **VISCOUS, **HARDENING))
    state = solver.solve(times, lambda t: T)
    z = solver.gather_points(state.internal)
    solver.destroy()
    ref = None
    if comm.rank == 0:  # serial reference, computed once and broadcast
        ref_solver, _ = _cycled_block(SELF, Chaboche(**ELASTIC, **VISCOUS, **HARDENING))
        ref = ref_solver.solve(times, lambda t: T)
        ref_solver.destroy()
    ref = comm.bcast(ref, root=0)
    assert ref.internal[:, 6].max() > 1e-3                      # real cyclic plasticity
    assert np.abs(ref.internal[:, 7:]).max() > 50e6             # and back stresses
    assert np.abs(state.u - ref.u).max() <= 1e-8 * np.abs(ref.u).max()
    for sl in (slice(0, 7), slice(7, 19)):                      # strains and p, back stresses
        assert np.abs(z[:, sl] - ref.internal[:, sl]).max() <= \
            1e-7 * np.abs(ref.internal[:, sl]).max()


def test_newton_converges_quadratically_with_recovering_back_stresses():
    """A step of the unloading half-cycle (back stresses built in tension, recovering):
    the non-symmetric tangent gives quadratic convergence, under GMRES by default."""
    solver, T = _cycled_block(SELF, Chaboche(**ELASTIC, **VISCOUS, **HARDENING),
                              cell="hexahedron")
    assert solver.ksp.getType() == "gmres"
    st = solver.initial_state()
    for t in np.linspace(0.0, 0.75 * PERIOD, 7)[1:]:          # to the compression peak
        st = solver.step(st, T, t)
    solver.destroy()
    r = np.array(st.newton) / st.newton[0]
    print("\nNewton relative residuals:", r)
    assert np.abs(st.internal[:, 7:13]).max() > 50e6
    pairs = [(a, b) for a, b in itertools.pairwise(r) if a < 1e-2 and b > 1e-14]
    assert pairs, r
    assert all(b <= 100.0 * a**2 for a, b in pairs), r


def test_zero_hardening_gives_the_norton_solution():
    """To the Newton and Krylov tolerances (CG for Norton, GMRES for Chaboche): the laws
    agree to 1e-10 at the material points (tests/test_chaboche.py)."""
    times = np.linspace(0.0, PERIOD, 6)
    answers = []
    for law in (Norton(**ELASTIC, **VISCOUS), Chaboche(**ELASTIC, **VISCOUS, D1=900.0)):
        solver, T = _cycled_block(SELF, law)
        answers.append(solver.solve(times, lambda t, T=T: T))
        solver.destroy()
    a, b = answers
    assert a.internal[:, 6].max() > 1e-3
    assert np.abs(b.u - a.u).max() <= 1e-8 * np.abs(a.u).max()
    assert np.abs(b.internal[:, :7] - a.internal).max() <= 1e-8 * np.abs(a.internal).max()

"""A hot spinning block creeping under a tip pressure, solved with the distributed FOM.

Run: mpiexec -n 2 .venv/bin/python mpi_examples/fom_creep.py   (a few seconds)
Every rank holds the mesh; elements are partitioned (METIS or RCB); PETSc solves.
"""
from __future__ import annotations

import numpy as np

from rom.fom.loads import Centrifugal, Dirichlet, Loads, Pressure
from rom.fom.mesh import FEMesh
from rom.fom.solver import MechanicalSolver
from rom.materials import Norton, Table
from rom.meshes import solid_block
from rom.parallel import rank0_print, world


def main() -> None:
    comm = world()
    mesh = FEMesh.from_meshio(solid_block((6, 2, 2), cell="tetra10", lengths=(0.06, 0.02, 0.02)))
    law = Norton(E=Table([300.0, 1200.0], [200e9, 140e9]), nu=0.3, alpha=1.4e-5, T_ref=300.0,
                 K=Table([300.0, 1200.0], [900e6, 300e6]), n=5.0)
    loads = Loads(dirichlet=[Dirichlet("xmin")], pressure=[Pressure("xmax", -50e6)],
                  centrifugal=Centrifugal(1000.0, (-0.2, 0, 0), (0, 1, 0)), density=8000.0,
                  amplitude=lambda t: min(t, 1.0))
    solver = MechanicalSolver(mesh, law, loads, comm=comm)
    x = mesh.points[:, 0]
    times = np.array([0.0, 1.0, 10.0, 100.0])

    def report(i, st):
        pmax = comm.allreduce(float(st.internal[:, 6].max()), op=__import__("mpi4py").MPI.MAX)
        rank0_print(comm, f"t = {st.time:7.1f} s  tip u_x = {st.u[:, 0].max():.4e} m  "
                          f"max p = {pmax:.3e}  Newton its = {len(st.newton) - 1}  "
                          f"KSP its = {st.ksp_iterations}")

    solver.solve(times, lambda t: 600.0 + 2000.0 * x, callback=report)
    rank0_print(comm, f"{3 * mesh.n_nodes} dofs on {comm.size} rank(s), "
                      f"partition: {solver.part.method}")
    solver.destroy()


if __name__ == "__main__":
    main()

"""Distributed matrix EIM + reduced basis on a parametric heat problem; checks vs serial.

    mpiexec -n 2 python mpi_examples/interp_distributed.py
"""
import numpy as np
from mpi4py import MPI

from rom.interp import build_rb, matrix_eim
from rom.interp.problems import gaussian_heat

comm = MPI.COMM_WORLD
p = gaussian_heat(12, width=0.5)                      # every rank builds it, owns a row block
lp, P = p.linear_problem(comm), p.sample(24, seed=0)
eim = matrix_eim(lp.assemble, P, comm=comm, tol=1e-10)
ref = matrix_eim(p.assemble, P, comm=MPI.COMM_SELF, tol=1e-10)
assert np.array_equal(eim.magic_rows, ref.magic_rows) and np.array_equal(eim.B, ref.B)
model = build_rb(lp, P, product=p.local(comm)["product"], coercivity=1.0, comm=comm,
                 rb_tol=1e-5)
mu = np.array([0.42, 0.58])
r = model.solve(mu)                                   # magic entries via the hook
e = np.concatenate(comm.allgather(r.field))
u = p.solve(mu)
err = np.sqrt((u - e) @ p.product() @ (u - e))
assert err <= r.error_bound <= 2.0 * err, (err, r.error_bound)
if comm.rank == 0:
    print(f"{comm.size} ranks: {eim.n_terms} EIM terms (err {eim.errors[-1]:.1e}), "
          f"{model.n_basis} basis functions, error {err:.2e} <= bound {r.error_bound:.2e} "
          f"(effectivity {r.error_bound / err:.2f}), online {1e3 * r.seconds:.2f} ms")

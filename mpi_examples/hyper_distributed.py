"""Distributed hyper-reduction: ECM from fields, Q-DEIM points and a Gappy-POD indicator; checks vs serial.

    mpiexec -n 2 .venv/bin/python mpi_examples/hyper_distributed.py        (a few seconds)
"""
import numpy as np

from rom.hyper import ecm_fields, gappy, qdeim
from rom.parallel import even_split, rank0_print, world

comm = world()
rng = np.random.default_rng(0)                          # every rank builds the same data ...
P, X = 4000, rng.random((4000, 3))
eps = 1e-3 * np.cos(np.pi * rng.integers(0, 3, (6, 6, 3)) @ X.T + rng.random((6, 6, 1)))
eps = eps.transpose(0, 2, 1)                            # (modes, points, 6) strains
t = np.linspace(0.1, 1.5, 16)[:, None]
e = np.einsum("si,igk->sgk", t * rng.standard_normal(6) + t**2 * rng.standard_normal(6), eps)
sig = 2e11 * e / np.sqrt(1 + (np.linalg.norm(e, axis=2, keepdims=True) / 1.5e-3) ** 2)  # Pa
w = np.full(P, 1e-6 / P)                                # m^3
lo, hi = even_split(P, comm.size)[comm.rank:comm.rank + 2]   # ... and keeps its points
idx, x = ecm_fields(eps[:, lo:hi], sig[:, lo:hi], w[lo:hi], tol=1e-5, comm=comm)
ref_idx, ref_x = ecm_fields(eps, sig, w, tol=1e-5)      # serial reference on one rank
assert idx.tolist() == ref_idx.tolist() and np.allclose(x, ref_x, rtol=1e-10)

U = np.linalg.svd(p_dual := sig[:, :, 0].T, full_matrices=False)[0][:, :5]  # dual: sigma_xx
pts = qdeim(U[lo:hi], comm=comm)                        # imposed points for the indicator
assert pts.tolist() == qdeim(U).tolist()
M = np.union1d(idx, pts)
_, eta = gappy(U[M], 1.05 * p_dual[M, -1] + 1e7 * np.sin(40 * X[M, 0]))  # indicator off-span
rank0_print(comm, f"{comm.size} rank(s): ECM {len(idx)} points of {P}, Q-DEIM points "
                  f"{pts.tolist()}, Gappy indicator {eta:.3e}; identical to serial")

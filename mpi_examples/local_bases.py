"""Local reduced bases on a synthetic problem with 3 regimes: `mpiexec -n 2 python mpi_examples/local_bases.py`."""
import numpy as np
from mpi4py import MPI

from rom.clustering import (
    build_local_bases,
    efficiency_criterion,
    format_summary,
    snapshot_gram,
    synthetic_regimes,
)
from rom.parallel import even_split

comm = MPI.COMM_WORLD
train, test = synthetic_regimes(30, 5, seed=0), synthetic_regimes(12, 5, seed=1)
off = even_split(train.X.shape[0], comm.size)
rows = slice(off[comm.rank], off[comm.rank + 1])          # this rank's rows

G = snapshot_gram(train.X[rows], comm=comm)                # the one Allreduce
lb = build_local_bases(train.X[rows], comm=comm, k=3, dissimilarity="sine", rtol=1e-3, gram=G)
crit = efficiency_criterion(G, lb.columns, rtol=1e-3)
choice = lb.selector(train.features, metric="sine").select(test.features)   # online choice
err = lb.projection_errors(test.X[rows], choice, comm=comm)

purity = [np.bincount(train.regime[lb.column_labels == c]).max() / lb.sizes[c] for c in range(3)]
if comm.rank == 0:
    print(format_summary(lb, crit))
    print(f"cluster purity {np.round(purity, 3).tolist()}, held-out error mean {err.mean():.2e}"
          f" max {err.max():.2e}")
assert min(purity) > 0.9 and crit.pays_off and err.mean() < 2e-2

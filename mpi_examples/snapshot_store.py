"""Write a snapshot store from every rank, read it back with an even row split.

Run: ``mpiexec -n 2 python mpi_examples/snapshot_store.py [out.h5]``.
Each rank owns a contiguous block of nodes of a 1D bar and writes the
displacement u(x, t) = t * x**2 (m) of two loadings; the store is then read
back with the default even split and checked against the formula.
"""
from __future__ import annotations

import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np
from mpi4py import MPI

from rom.io.snapshots import SnapshotStore
from rom.parallel import even_split, rank0_print


def main(comm: MPI.Comm, path: Path) -> None:
    n_nodes, times = 1001, np.linspace(0.0, 1.0, 6)
    x = np.linspace(0.0, 1.0, n_nodes)                      # node coordinates (m)
    # writer partition: deliberately not the even split the readers use
    w = np.concatenate([[0], np.cumsum(np.arange(1, comm.size + 1))])
    cuts = (w * n_nodes) // w[-1]
    lo, hi = cuts[comm.rank], cuts[comm.rank + 1]
    with SnapshotStore.create(path, comm=comm, overwrite=True) as store:
        store.add_field("u", kind="nodal", n_entities=n_nodes, units="m")
        for amp in (1.0, 2.0):
            lid = store.add_loading(f"amp={amp:g}", {"amplitude": amp})
            for k, t in enumerate(times):                       # loop over time steps
                store.append({"u": amp * t * x[lo:hi] ** 2}, loading=lid, time=t, step=k)
    store = SnapshotStore.open(path, comm=comm)
    X = store.read("u")                                     # (n_local, n_snapshots)
    off = even_split(n_nodes, comm.size)
    table = store.snapshot_table()
    amps = np.array([store.loadings[i].parameters["amplitude"] for i in table["loading"]])
    expected = x[off[comm.rank]:off[comm.rank + 1], None] ** 2 * (amps * table["time"])
    ok = comm.allreduce(bool(np.allclose(X, expected, rtol=0, atol=1e-15)), op=MPI.LAND)
    shapes = comm.gather(X.shape, root=0)
    rank0_print(comm, f"wrote {path.name} from {comm.size} rank(s): field u "
                      f"{store.fields['u'].n_rows} rows x {store.n_snapshots} snapshots, "
                      f"{len(store.loadings)} loadings")
    rank0_print(comm, f"read back with an even split, local shapes per rank: {shapes}; "
                      f"values {'match' if ok else 'DO NOT match'} the formula")
    store.close()
    if not ok:
        raise SystemExit(1)


if __name__ == "__main__":
    comm = MPI.COMM_WORLD
    tmp = None
    if len(sys.argv) > 1:
        out = Path(sys.argv[1])
    else:
        tmp = comm.bcast(tempfile.mkdtemp() if comm.rank == 0 else None, root=0)
        out = Path(tmp) / "snapshots.h5"
    try:
        main(comm, out)
    finally:
        comm.Barrier()
        if tmp is not None and comm.rank == 0:
            shutil.rmtree(tmp, ignore_errors=True)

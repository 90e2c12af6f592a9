"""Check the reduced-space cross-validation against models really rebuilt without a loading.

    python tools/crossval_check.py cases/blade/case.yaml --leave train0 train8 [--json F]

For every named training loading: build a reduced model from the case's snapshot store
without that loading's snapshots (same ``online:`` tolerances, new POD, new ECM), solve the
loading with it (the training check's solve) and print its errors and indicator beside the
cross-validation fold of the case's model (``meta["crossval"]``, docs/online.md), which
emulates the same rebuild in the model's reduced space at the cost of a reduced solve.
Serial; one model build per loading (minutes at the blade's size 1).
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
from mpi4py import MPI

from rom.config import load_case
from rom.fom.mesh import FEMesh
from rom.fom.setup import material_from_config
from rom.io.mesh import read_mesh
from rom.io.snapshots import SnapshotStore
from rom.online import load
from rom.online.build import Partition, build_from_arrays, read_blocks
from rom.online.training import training_check


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("case")
    ap.add_argument("--leave", nargs="+", required=True, help="training loadings to leave out")
    ap.add_argument("--json", help="write the rows here")
    args = ap.parse_args()
    case = load_case(args.case)
    path = Path(case.online.model or Path(case.output.directory) / f"{case.name}.rom.h5")
    cv = load(path).meta.get("crossval")
    if cv is None:
        raise SystemExit(f"{path}: no cross-validation in the model (rebuild it)")
    mesh_file = str(Path(case.mesh).resolve())
    mesh = FEMesh.from_meshio(read_mesh(mesh_file), source=mesh_file)
    law = material_from_config(case.material)
    with SnapshotStore.open(case.snapshots.store) as store:
        tr = read_blocks(store, law, mesh, Partition.of(mesh, 1, 0))
        U, S, Z = tr.U, tr.S, tr.Z
        cols = {ld.name: np.asarray(store.columns_of(ld.name)) for ld in store.loadings}
    rows = {}
    for name in args.leave:  # loop over left-out loadings
        if name not in cols or name not in cv["names"]:
            raise SystemExit(f"{name}: not a training loading of {args.case}")
        keep = np.setdiff1d(np.arange(U.shape[1]), cols[name])
        t0 = time.perf_counter()
        model = build_from_arrays(mesh, case.material, case.loading, U[:, keep], S[keep],
                                  Z[keep], case.online, case_file=str(case.source_file),
                                  mesh_file=mesh_file)
        seconds = time.perf_counter() - t0
        chk = training_check(case.source_file, model, MPI.COMM_SELF)
        k, j = chk.names.index(name), cv["names"].index(name)
        rows[name] = {"rebuilt": [float(chk.err_u[k]), float(chk.err_p[k]),
                                  float(chk.indicator[k]), model.n_modes, model.n_points],
                      "fold": [cv["err_u"][j], cv["err_p"][j], cv["indicator"][j],
                               cv["n_modes"][j]],
                      "build_seconds": seconds}
        r, f = rows[name]["rebuilt"], rows[name]["fold"]
        print(f"{name}: rebuilt ({r[3]} modes, {r[4]} points, {seconds:.0f} s) e_u {r[0]:.2e} "
              f"e_p {r[1]:.2e} indicator {r[2]:.2e} | fold ({f[3]} modes) e_u {f[0]:.2e} "
              f"e_p {f[1]:.2e} indicator {f[2]:.2e}", flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Element tangents by chunks of elements: time and scratch memory of
:func:`rom.fom.kernels.stiffness` against its ``chunk`` (the elements of a chunk share one
set of B-matrix temporaries), on the elements of a mesh.

    python benchmarks/stiffness_chunk.py [--mesh cases/blade/mesh.inp] [--repeat 5]
                                         [--chunks 1048576 262144 65536 16384 4096]
                                         [--out benchmarks/results/stiffness_chunk.json]

One process; for each chunk, ``--repeat`` rounds interleaved with the other chunks (a shared
machine's load hits them alike): the median wall time and the scratch beyond the output
(``tracemalloc`` peak minus the (n_el, 24, 24) result).
"""
from __future__ import annotations

import argparse
import json
import platform
import time
import tracemalloc
from pathlib import Path

import numpy as np


def main(argv=None) -> dict:
    from rom.fom import kernels
    from rom.fom.discretization import ElementSet
    from rom.fom.mesh import FEMesh
    from rom.io.mesh import read_mesh

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--mesh", default="cases/blade/mesh.inp")
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--chunks", type=int, nargs="+",
                    default=[1 << 20, 1 << 18, 1 << 16, 1 << 14, 1 << 12])
    ap.add_argument("--out", default="benchmarks/results/stiffness_chunk.json")
    args = ap.parse_args(argv)
    mesh = FEMesh.from_meshio(read_mesh(args.mesh))
    b = ElementSet(mesh).blocks[0]
    rng = np.random.default_rng(0)
    A = rng.standard_normal((6, 6))
    D = np.broadcast_to(A @ A.T * 1e10, b.wdetJ.shape + (6, 6))
    times = {c: [] for c in args.chunks}
    scratch = {}
    ref = kernels.stiffness(b.dNdx, b.wdetJ, D, chunk=args.chunks[0])
    diff = {}
    for _ in range(args.repeat):  # rounds, the chunks interleaved
        for c in args.chunks:  # loop over chunk sizes
            tracemalloc.start()
            t0 = time.perf_counter()
            K = kernels.stiffness(b.dNdx, b.wdetJ, D, chunk=c)
            times[c].append(time.perf_counter() - t0)
            peak = tracemalloc.get_traced_memory()[1]
            tracemalloc.stop()
            scratch[c] = (peak - K.nbytes) / 2 ** 20
            diff[c] = float(np.max(np.abs(K - ref)) / np.max(np.abs(ref)))
            del K
    rows = [{"chunk": c, "elements_per_chunk": max(1, c // (b.wdetJ.shape[1] * 24)),
             "median_s": float(np.median(times[c])), "scratch_mb": scratch[c],
             "max_rel_diff": diff[c]} for c in args.chunks]
    out = {"mesh": args.mesh, "elements": len(b.cells), "repeat": args.repeat,
           "machine": platform.node(), "rows": rows}
    print(f"{len(b.cells)} elements of {args.mesh}, median of {args.repeat}")
    print(f"{'chunk':>9} {'el/chunk':>9} {'time s':>8} {'scratch MB':>11} {'rel diff':>9}")
    for r in rows:  # table
        print(f"{r['chunk']:9d} {r['elements_per_chunk']:9d} {r['median_s']:8.3f} "
              f"{r['scratch_mb']:11.1f} {r['max_rel_diff']:9.1e}")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(out, indent=1))
    return out


if __name__ == "__main__":
    main()

"""Element kernels by chunks of elements: time and scratch memory of
:func:`rom.fom.kernels.stiffness` (element tangents) and :func:`rom.fom.kernels.strains_many`
(strains of the reduced-basis modes: the offline build and every enrichment) against their
``chunk`` (the elements of a chunk share one set of temporaries), on the elements of a mesh.

    python benchmarks/kernel_chunks.py [--mesh cases/blade/mesh.inp] [--repeat 5] [--modes 16]
                                       [--out benchmarks/results/kernel_chunks.json]

One process; for each kernel and chunk, ``--repeat`` rounds interleaved with the other
chunks (a shared machine's load hits them alike): the median wall time, the scratch beyond
the output (``tracemalloc`` peak minus the result) and the largest relative difference from
the first chunk's result.
"""
from __future__ import annotations

import argparse
import json
import platform
import time
import tracemalloc
from pathlib import Path

import numpy as np

STIFFNESS_CHUNKS = [1 << 20, 1 << 18, 1 << 16, 1 << 14, 1 << 12]   # (elements x 192) units
STRAIN_CHUNKS = [4096, 1024, 256, 64]                               # elements


def _measure(fn, chunks, repeat):
    times = {c: [] for c in chunks}
    scratch, diff = {}, {}
    ref = fn(chunks[0])
    for _ in range(repeat):  # rounds, the chunks interleaved
        for c in chunks:  # loop over chunk sizes
            tracemalloc.start()
            t0 = time.perf_counter()
            out = fn(c)
            times[c].append(time.perf_counter() - t0)
            peak = tracemalloc.get_traced_memory()[1]
            tracemalloc.stop()
            scratch[c] = (peak - out.nbytes) / 2 ** 20
            diff[c] = float(np.max(np.abs(out - ref)) / np.max(np.abs(ref)))
            del out
    return [{"chunk": c, "median_s": float(np.median(times[c])), "scratch_mb": scratch[c],
             "max_rel_diff": diff[c]} for c in chunks]


def main(argv=None) -> dict:
    from rom.fom import kernels
    from rom.fom.discretization import ElementSet
    from rom.fom.mesh import FEMesh
    from rom.io.mesh import read_mesh

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--mesh", default="cases/blade/mesh.inp")
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--modes", type=int, default=16, help="displacement fields of strains_many")
    ap.add_argument("--out", default="benchmarks/results/kernel_chunks.json")
    args = ap.parse_args(argv)
    mesh = FEMesh.from_meshio(read_mesh(args.mesh))
    b = ElementSet(mesh).blocks[0]
    rng = np.random.default_rng(0)
    A = rng.standard_normal((6, 6))
    D = np.broadcast_to(A @ A.T * 1e10, b.wdetJ.shape + (6, 6))
    ue = rng.standard_normal((mesh.n_nodes, 3, args.modes))[b.cells]
    out = {"mesh": args.mesh, "elements": len(b.cells), "repeat": args.repeat,
           "modes": args.modes, "machine": platform.node(),
           "stiffness": _measure(lambda c: kernels.stiffness(b.dNdx, b.wdetJ, D, chunk=c),
                                 STIFFNESS_CHUNKS, args.repeat),
           "strains_many": _measure(lambda c: kernels.strains_many(b.dNdx, ue, chunk=c),
                                    STRAIN_CHUNKS, args.repeat)}
    print(f"{len(b.cells)} elements of {args.mesh}, median of {args.repeat}")
    for kernel in ("stiffness", "strains_many"):  # table per kernel
        print(f"{kernel:>12} {'chunk':>9} {'time s':>8} {'scratch MB':>11} {'rel diff':>9}")
        for r in out[kernel]:  # rows
            print(f"{'':>12} {r['chunk']:9d} {r['median_s']:8.3f} {r['scratch_mb']:11.1f} "
                  f"{r['max_rel_diff']:9.1e}")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(out, indent=1))
    return out


if __name__ == "__main__":
    main()

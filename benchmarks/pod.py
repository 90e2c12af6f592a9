"""POD benchmark: rom.pod methods against the bare Gram bound, numpy's SVD and pyMOR.

    python benchmarks/pod.py [--rows 200000 --cols 400 --repeat 3 --threads T]
    mpiexec -n 2 python benchmarks/pod.py

Matrix: X = A diag(s) V^T, s_i = 10^(-8 i / m), V orthonormal (seeded), A Gaussian with
entries N(0, 1/N) generated in blocks of 4096 global rows, each from its own seed, so
the global matrix does not depend on the rank count and no rank builds more than its
rows. A is not exactly orthonormal (A^T A = I + O(sqrt(m/N))), so the spectrum of X
is close to, not equal to, s: accuracy is measured against numpy.linalg.svd of the
same X (serial runs only; distributed runs compare with the serial JSON when present).

"Bare bound": C = X^T X (+ Allreduce), numpy eigh(C), X @ V, nothing else.
Times are medians of --repeat rounds, each round timing every method once (the ratio to
the bare bound is the median of the per-round ratios, robust to a changing machine
load); numpy's SVD and pyMOR are run once. BLAS threads
default to cores / ranks. Writes benchmarks/results/pod-<ranks>[-t<threads>][-<tag>].json.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

from mpi4py import MPI  # no numpy yet: BLAS threads are set from the rank count

parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
parser.add_argument("--rows", type=int, default=200_000)
parser.add_argument("--cols", type=int, default=400)
parser.add_argument("--rtol", type=float, default=1e-6)
parser.add_argument("--repeat", type=int, default=3)
parser.add_argument("--threads", type=int, default=None, help="BLAS threads per rank")
parser.add_argument("--randomized-modes", type=int, default=50,
                    help="max_modes of the extra randomized run (0: skip)")
parser.add_argument("--methods", nargs="+", default=None,
                    help="subset of: snapshots tsqr randomized randomized-k (default: all)")
parser.add_argument("--no-svd", action="store_true", help="skip numpy.linalg.svd")
parser.add_argument("--no-pymor", action="store_true", help="skip pyMOR")
parser.add_argument("--tag", default="", help="suffix of the JSON file name")
args = parser.parse_args()
comm = MPI.COMM_WORLD
threads = args.threads or max(1, (os.cpu_count() or 1) // comm.size)
for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[var] = str(threads)

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from rom.linalg import gram, pod
from rom.parallel import even_split, rank0_print

BLOCK = 4096
ROOT = Path(__file__).resolve().parent


def snapshot_rows(lo: int, hi: int, m: int, seed: int = 0) -> np.ndarray:
    """Rows [lo, hi) of X = A diag(s) V^T (A block-seeded: rank-count independent)."""
    s = 10.0 ** (-8.0 * np.arange(m) / m)
    V = np.linalg.qr(np.random.default_rng([seed, 1 << 30]).standard_normal((m, m)))[0]
    A = np.empty((hi - lo, m))
    for b in range(lo // BLOCK, (hi - 1) // BLOCK + 1 if hi > lo else 0):
        a, z = b * BLOCK, (b + 1) * BLOCK
        block = np.random.default_rng([seed, b]).standard_normal((BLOCK, m))
        A[max(a, lo) - lo:min(z, hi) - lo] = block[max(a, lo) - a:min(z, hi) - a]
    A *= 1.0 / np.sqrt(args.rows)
    return (A * s) @ V.T


def timed(fn):
    """Run ``fn`` once on all ranks: (wall time, CPU time) of the slowest rank, and the output.

    On a machine shared with other processes, wall times are inflated by the scheduler;
    the CPU time of the slowest rank (MPICH's busy waiting included) is what the wall time
    would be on dedicated cores, so speed-ups are also given in CPU time.
    """
    comm.Barrier()
    t0, c0 = time.perf_counter(), time.process_time()
    out = fn()
    c1 = time.process_time()
    comm.Barrier()
    wall = comm.allreduce(time.perf_counter() - t0, op=MPI.MAX)
    return (wall, comm.allreduce(c1 - c0, op=MPI.MAX)), out


def bare(X):
    C = gram(X, None, comm)
    _, V = np.linalg.eigh(C)
    return X @ V


def main() -> None:
    off = even_split(args.rows, comm.size)
    lo, hi = int(off[comm.rank]), int(off[comm.rank + 1])
    t0 = time.perf_counter()
    load_start = os.getloadavg()[0]
    X = snapshot_rows(lo, hi, args.cols)
    rank0_print(comm, f"# POD benchmark: {args.rows} x {args.cols}, {comm.size} rank(s) x "
                      f"{threads} BLAS thread(s), rtol={args.rtol:g}; generated in "
                      f"{time.perf_counter() - t0:.1f} s")
    runs = {"bare": lambda: bare(X),
            "snapshots": lambda: pod(X, comm=comm, method="snapshots", rtol=args.rtol),
            "tsqr": lambda: pod(X, comm=comm, method="tsqr", rtol=args.rtol),
            "randomized": lambda: pod(X, comm=comm, method="randomized", rtol=args.rtol)}
    if args.randomized_modes:
        runs[f"randomized k={args.randomized_modes}"] = lambda: pod(
            X, comm=comm, method="randomized", max_modes=args.randomized_modes)
    if args.methods:
        keep = {m.replace("randomized-k", f"randomized k={args.randomized_modes}")
                for m in args.methods}
        runs = {name: fn for name, fn in runs.items() if name == "bare" or name in keep}
    # Rounds: each round times every method once, so that a change of machine load
    # affects all of them alike; the ratio to the bare bound is the median per-round ratio.
    times = {name: [] for name in runs}
    cpus = {name: [] for name in runs}
    outputs = {}
    for _ in range(args.repeat):
        for name, fn in runs.items():
            (t, c), outputs[name] = timed(fn)
            times[name].append(t)
            cpus[name].append(c)
    results = {}
    for name in runs:
        ratio = float(np.median(np.array(times[name]) / np.array(times["bare"])))
        results[name] = {"time": float(np.median(times[name])), "times": times[name],
                         "cpu": float(np.median(cpus[name])), "cpus": cpus[name], "ratio": ratio}
    t_bare = results["bare"]["time"]
    serial = comm.size == 1
    ref = None
    if serial and not args.no_svd:
        (t_svd, c_svd), (U, s, _) = timed(lambda: np.linalg.svd(X, full_matrices=False))
        ref = (U, s)
        results["numpy.linalg.svd"] = {"time": t_svd, "times": [t_svd], "cpu": c_svd,
                                       "ratio": t_svd / t_bare}
    prev = None                                   # a serial run of the same matrix, if any
    for path in sorted((ROOT / "results").glob("pod-1*.json")) if not serial else []:
        data = json.loads(path.read_text())
        if (data["config"]["rows"], data["config"]["cols"]) == (args.rows, args.cols):
            prev = data
            break
    for name in list(runs)[1:]:
        res, entry = outputs[name], results[name]
        entry.update(n_modes=res.n_modes, singular_values=res.singular_values.tolist(), **res.info)
        if ref is not None:
            n = res.n_modes
            entry["s_relerr"] = float(np.max(np.abs(res.singular_values / ref[1][:n] - 1)))
            cosines = np.linalg.svd(ref[0][:, :n].T @ res.modes, compute_uv=False)
            entry["subspace_err"] = float(np.sqrt(max(0.0, 1 - cosines.min() ** 2)))
            entry["orth_err"] = float(np.max(np.abs(res.modes.T @ res.modes - np.eye(n))))
        elif prev is not None and name in prev["results"]:
            s1 = np.array(prev["results"][name]["singular_values"])
            k = min(s1.size, res.n_modes)
            entry["s_diff_vs_1rank"] = float(np.max(np.abs(res.singular_values[:k] / s1[:k] - 1)))
    del outputs
    if serial and not args.no_pymor:
        results.update(pymor_runs(X, ref, results["snapshots"]["n_modes"], t_bare))
    report(results, t_bare)
    rank0_print(comm, f"# 1-min load average (all processes on the machine): {load_start:.1f} at "
                      f"start, {os.getloadavg()[0]:.1f} at end; {os.cpu_count()} cores")
    if comm.rank == 0:
        tag = ("" if args.threads is None else f"-t{threads}") + (f"-{args.tag}" if args.tag else "")
        out = ROOT / "results" / f"pod-{comm.size}{tag}.json"
        out.parent.mkdir(exist_ok=True)
        meta = {"rows": args.rows, "cols": args.cols, "rtol": args.rtol, "ranks": comm.size,
                "blas_threads": threads, "cpu_count": os.cpu_count(), "numpy": np.__version__,
                "python": platform.python_version(),
                "machine": platform.processor() or platform.machine(),
                "loadavg_1min": [load_start, os.getloadavg()[0]]}
        out.write_text(json.dumps({"config": meta, "results": results}, indent=1))
        print(f"# wrote {out.relative_to(ROOT.parent)}")


def pymor_runs(X, ref, n_modes, t_bare) -> dict:
    try:
        import pymor
        from pymor.algorithms.pod import pod as pymor_pod
        from pymor.core.logger import set_log_levels
        from pymor.vectorarrays.numpy import NumpyVectorSpace
    except ImportError as exc:
        print(f"# pyMOR not importable ({exc}); skipped")
        return {}
    set_log_levels({"pymor": "WARN"})
    out = {}
    for method in ("method_of_snapshots", "qr_svd"):
        # pyMOR >= 2024: from_numpy/to_numpy use columns as vectors (older: rows)
        old = int(pymor.__version__.split(".")[0]) < 2024
        VA = NumpyVectorSpace.from_numpy(X.T if old else X)
        try:
            (t, c), (modes, svals) = timed(lambda va=VA, meth=method: pymor_pod(
                va, modes=n_modes, rtol=0.0, method=meth))
        except Exception as exc:                           # noqa: BLE001 - report, go on
            print(f"# pyMOR pod(method={method!r}) failed: {exc!r}")
            continue
        U = modes.to_numpy().T if old else modes.to_numpy()
        entry = {"time": t, "times": [t], "cpu": c, "ratio": t / t_bare, "n_modes": len(svals),
                 "version": pymor.__version__}
        if ref is not None:
            n = len(svals)
            entry["s_relerr"] = float(np.max(np.abs(svals / ref[1][:n] - 1)))
            cosines = np.linalg.svd(ref[0][:, :n].T @ U, compute_uv=False)
            entry["subspace_err"] = float(np.sqrt(max(0.0, 1 - cosines.min() ** 2)))
            entry["orth_err"] = float(np.max(np.abs(U.T @ U - np.eye(n))))
        out[f"pymor {method}"] = entry
    return out


def report(results: dict, t_bare: float) -> None:
    def fmt(v, spec):
        return format(v, spec) if v is not None else "-"
    header = ("| method                     | modes | time [s] | cpu [s] | / bare | max rel. err s "
              "| subspace err | orth. err |")
    lines = [header, "|" + "|".join(["---"] * 8) + "|"]
    for name, e in results.items():
        err = e.get("s_relerr", e.get("s_diff_vs_1rank"))
        lines.append(f"| {name:<26s} | {e.get('n_modes', '-')!s:>5} | {e['time']:8.3f} | "
                     f"{e['cpu']:7.3f} | {e['ratio']:6.2f} | {fmt(err, '14.2e')} | "
                     f"{fmt(e.get('subspace_err'), '12.2e')} | {fmt(e.get('orth_err'), '9.1e')} |")
    rank0_print(comm, "\n".join(lines))
    if comm.size > 1:
        rank0_print(comm, "# distributed: 'max rel. err s' = difference to the singular "
                          "values of the 1-rank run (results/pod-1*.json) where present")


if __name__ == "__main__":
    main()

"""Hyper-reduction benchmark: ECM against scipy NNLS and naive NNOMP; DEIM / Q-DEIM timings.

    python benchmarks/hyper.py ecm  [--points 100000 --snapshots 200 --modes 20 --tol 1e-4]
    python benchmarks/hyper.py ecm  --points 1000000 --no-naive --float32-stresses
    mpiexec -n 2 python benchmarks/hyper.py ecm --no-naive
    python benchmarks/hyper.py deim [--rows 1000000 --basis 100]

ECM data ("mechanical-like"): P points in a 1 x 0.5 x 0.2 m box, smooth mode strains
(6 Voigt components, engineering shear, cosines of growing wave numbers), and stress
snapshots from a saturating (plastic-like) law sigma = K tr(e) 1 + 2 G_eff dev(e),
G_eff = G / sqrt(1 + (e_eq / e_y)^2), with a yield strain lowered by a hot spot moving
with the load; 4 load directions, load factors growing over the snapshots. Integrand
rows = snapshots x modes (4000 by default). Every field is a function of the global
point (points drawn in seeded chunks of 65536), so data do not depend on the rank count.

Methods, in the same run:
- ``ecm_fields``: rom.hyper.ecm_fields from the fields (compression in blocks + greedy
  with the exact stopping test); G is never formed. Median of --repeat runs; then once
  with ``reduce=True`` (point elimination after the greedy).
- ``ecm_on_G``: rom.hyper.ecm on the explicitly formed G (when it fits, --max-g-gb).
- ``naive``: the published NNOMP written plainly (Mordicus' NNOMPA without its random
  points): per added point one full ``G^T r`` and one ``scipy.optimize.nnls`` from
  scratch on the selected columns. Serial only, on the formed G; once.
- ``scipy_nnls``: ``scipy.optimize.nnls`` on the whole problem (the ECSW approach), on
  the small sizes of --nnls-points (it keeps almost every point), median of --nnls-repeat
  runs (default 1), with ours at the same size (median of --repeat).
Reported: wall time (slowest rank), points, true relative error ||G_S x - G w|| / ||G w||;
for the scipy nnls comparison also the process CPU time (less sensitive to other jobs).
BLAS threads: 1 per rank unless --threads. Writes benchmarks/results/hyper-*.json.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

from mpi4py import MPI  # numpy later: BLAS threads are set first

parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
parser.add_argument("what", choices=["ecm", "deim"])
parser.add_argument("--points", type=int, default=100_000)
parser.add_argument("--snapshots", type=int, default=200)
parser.add_argument("--modes", type=int, default=20)
parser.add_argument("--tol", type=float, default=1e-4)
parser.add_argument("--repeat", type=int, default=3)
parser.add_argument("--no-naive", action="store_true", help="skip naive NNOMP and ecm on G")
parser.add_argument("--max-g-gb", type=float, default=4.0, help="largest explicit G formed")
parser.add_argument("--nnls-points", type=str, default="1000,2000",
                    help="sizes for scipy nnls on the whole problem ('' to skip)")
parser.add_argument("--nnls-repeat", type=int, default=1, help="runs of scipy nnls (median)")
parser.add_argument("--float32-stresses", action="store_true",
                    help="store the stress snapshots in float32 (memory at 1e6 points)")
parser.add_argument("--rows", type=int, default=1_000_000, help="deim: basis rows")
parser.add_argument("--basis", type=int, default=100, help="deim: basis columns")
parser.add_argument("--threads", type=int, default=1, help="BLAS threads per rank")
args = parser.parse_args()
for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[var] = str(args.threads)

import numpy as np
import scipy.linalg as sla
from scipy.optimize import nnls

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from rom.hyper import deim, ecm, ecm_fields, integrand_matrix, qdeim, quadrature_error
from rom.parallel import even_split, rank0_print

comm = MPI.COMM_WORLD
RESULTS = Path(__file__).resolve().parent / "results"
CHUNK = 65536
BOX = np.array([1.0, 0.5, 0.2])


def timed(fn):
    """Run ``fn`` on all ranks; (wall time of the slowest rank, output)."""
    comm.Barrier()
    t0 = time.perf_counter()
    out = fn()
    comm.Barrier()
    return comm.allreduce(time.perf_counter() - t0, op=MPI.MAX), out


# ---- mechanical-like data ---------------------------------------------------------------

def points(n: int, lo: int, hi: int, seed: int = 0) -> np.ndarray:
    """Global points [lo, hi) of n, drawn in seeded chunks (independent of the split)."""
    out = []
    for c in range(lo // CHUNK, (hi - 1) // CHUNK + 1 if hi > lo else 0):
        X = np.random.default_rng([seed, c]).random((min(CHUNK, n - c * CHUNK), 3)) * BOX
        out.append(X[max(lo, c * CHUNK) - c * CHUNK:min(hi, (c + 1) * CHUNK) - c * CHUNK])
    return np.concatenate(out) if out else np.zeros((0, 3))


def mode_strains(X: np.ndarray, n: int, seed: int = 1) -> np.ndarray:
    """(n, p, 6) smooth strains (1e-3 cosines, wave numbers growing with the mode)."""
    rng = np.random.default_rng(seed)
    kmax = (2 + np.arange(n) // 4)[:, None, None]
    kv = rng.integers(0, kmax, (n, 6, 3)) * np.pi / BOX               # (mode, component, xyz)
    phase = rng.random((n, 1, 6)) * 2 * np.pi
    amp = 1e-3 / (1 + 0.2 * np.arange(n))[:, None, None]
    return amp * np.cos(np.einsum("ikd,gd->igk", kv, X) + phase)


def stresses(X: np.ndarray, eps: np.ndarray, n_snap: int, dtype, seed: int = 2) -> np.ndarray:
    """(n_snap, p, 6) stresses (Pa) of the saturating law, computed in blocks of points."""
    rng = np.random.default_rng(seed)
    n = eps.shape[0]
    t = np.linspace(0.05, 1.0, n_snap)
    directions = rng.standard_normal((4, n)) / (1 + np.arange(n))   # 4 load directions
    alpha = 3 * t[:, None] * directions[np.arange(n_snap) % 4]
    x0 = np.stack([0.3 + 0.4 * t, np.full(n_snap, 0.25), np.full(n_snap, 0.1)], axis=1)
    K, Gm = 160e9, 80e9
    out = np.empty((n_snap, X.shape[0], 6), dtype=dtype)
    for g0 in range(0, X.shape[0], 4096):
        g1 = min(g0 + 4096, X.shape[0])
        e = np.einsum("si,igk->sgk", alpha, eps[:, g0:g1])
        d2 = ((X[None, g0:g1] - x0[:, None]) ** 2).sum(-1)
        ey = 2e-3 * (1 - 0.7 * np.exp(-d2 / 0.02))
        tr = e[..., :3].sum(-1)
        dev = e.copy()
        dev[..., :3] -= tr[..., None] / 3
        dev[..., 3:] /= 2                                   # tensor shear from engineering
        eq = np.sqrt(2 / 3 * ((dev[..., :3] ** 2).sum(-1) + 2 * (dev[..., 3:] ** 2).sum(-1)))
        s = 2 * (Gm / np.sqrt(1 + (eq / ey) ** 2))[..., None] * dev
        s[..., :3] += K * tr[..., None]
        out[:, g0:g1] = s
    return out


def fields(n: int, lo: int, hi: int, dtype=np.float64):
    X = points(n, lo, hi)
    eps = mode_strains(X, args.modes)
    return eps, stresses(X, eps, args.snapshots, dtype), np.full(hi - lo, 0.1 / n)


def naive_nnomp(G: np.ndarray, w: np.ndarray, tol: float):
    """Published NNOMP, plainly: one G^T r and one NNLS from scratch per added point."""
    b = G @ w
    nb, S, x, r = np.linalg.norm(b), np.zeros(0, dtype=int), np.zeros(0), b.copy()
    while np.linalg.norm(r) > tol * nb:
        c = G.T @ r
        c[S] = -np.inf
        S = np.append(S, int(np.argmax(c)))
        x = nnls(G[:, S], b, maxiter=10 * S.size + 100)[0]
        S, x = S[x > 0], x[x > 0]
        r = b - G[:, S] @ x
    return np.sort(S), x[np.argsort(S)]


# ---- runs ----------------------------------------------------------------------------------

def run_ecm() -> dict:
    n, size = args.points, comm.size
    lo, hi = even_split(n, size)[comm.rank:comm.rank + 2]
    dtype = np.float32 if args.float32_stresses else np.float64
    t_gen, (eps, sig, w) = timed(lambda: fields(n, lo, hi, dtype))
    rank0_print(comm, f"data: {n} points, {args.snapshots * args.modes} integrand rows, "
                      f"{size} rank(s), generated in {t_gen:.1f} s")
    res: dict = {}
    times, info = [], None
    for _ in range(args.repeat):
        t, (idx, _, info) = timed(lambda: ecm_fields(eps, sig, w, tol=args.tol, comm=comm,
                                                     return_info=True, progress=None))
        times.append(t)
        rank0_print(comm, f"  ecm_fields: {t:.2f} s, {len(idx)} points, error {info['error']:.3e}")
    res["ecm_fields"] = {"time": float(np.median(times)), "times": times, "points": len(idx),
                         "error": info["error"], "compressed_rank": info["rank"],
                         "stress_rank": info["stress_rank"], "iterations": info["iterations"],
                         "exact_candidates_median": float(np.median(info["candidates"] or [0]))}
    t, (ridx, _, rinfo) = timed(lambda: ecm_fields(eps, sig, w, tol=args.tol, comm=comm,
                                                   return_info=True, progress=None, reduce=True))
    res["ecm_fields_reduce"] = {"time": t, "points": len(ridx), "error": rinfo["error"],
                                "eliminated": len(rinfo["eliminated"]),
                                "elimination_time": rinfo["elimination_time"]}
    rank0_print(comm, f"  ecm_fields(reduce=True): {t:.2f} s, {len(ridx)} points "
                      f"({len(rinfo['eliminated'])} eliminated in "
                      f"{rinfo['elimination_time']:.3f} s), error {rinfo['error']:.3e}")
    g_gb = 8e-9 * args.snapshots * args.modes * n
    if not args.no_naive and size == 1 and g_gb <= args.max_g_gb:
        t_form, G = timed(lambda: integrand_matrix(eps, sig))
        t, (gi, gx) = timed(lambda: ecm(G, w, tol=args.tol, progress=None))
        res["ecm_on_G"] = {"time": t, "form_G": t_form, "points": len(gi),
                           "error": quadrature_error(G, w, gi, gx)}
        rank0_print(comm, f"  ecm on G: {t:.1f} s (+ {t_form:.1f} s to form G), {len(gi)} points")
        t, (ni, nx) = timed(lambda: naive_nnomp(G, w, args.tol))
        res["naive"] = {"time": t, "form_G": t_form, "points": len(ni),
                        "error": quadrature_error(G, w, ni, nx)}
        rank0_print(comm, f"  naive NNOMP: {t:.1f} s, {len(ni)} points")
        del G
    if size == 1 and args.nnls_points:
        res["scipy_nnls"] = []
        for p in (int(s) for s in args.nnls_points.split(",")):
            e, s, ww = fields(p, 0, p)
            G = integrand_matrix(e, s)
            t_ns, c_ns = [], []
            for _ in range(args.nnls_repeat):
                c0 = time.process_time()
                t_n, (xn, _) = timed(lambda G=G, ww=ww, p=p: nnls(G, G @ ww, maxiter=100 * p))
                t_ns.append(t_n)
                c_ns.append(time.process_time() - c0)
            t_n, c_n = float(np.median(t_ns)), float(np.median(c_ns))
            t_os, c_os = [], []
            for _ in range(args.repeat):
                c0 = time.process_time()
                t_o, (oi, ox) = timed(lambda e=e, s=s, ww=ww: ecm_fields(e, s, ww, tol=args.tol,
                                                                         progress=None))
                t_os.append(t_o)
                c_os.append(time.process_time() - c0)
            t_o, c_o = float(np.median(t_os)), float(np.median(c_os))
            nz = np.flatnonzero(xn)
            res["scipy_nnls"].append({
                "points_total": p, "nnls_time": t_n, "nnls_times": t_ns,
                "nnls_points": int(nz.size),
                "nnls_error": quadrature_error(G, ww, nz, xn[nz]), "ours_time": t_o,
                "ours_times": t_os, "ours_points": len(oi),
                "ours_error": quadrature_error(G, ww, oi, ox), "ratio": t_n / t_o,
                "nnls_cpu": c_n, "ours_cpu": c_o, "cpu_ratio": c_n / c_o})
            rank0_print(comm, f"  scipy nnls on {p} points: {t_n:.1f} s (median of "
                              f"{args.nnls_repeat}), {nz.size} points; "
                              f"ours {t_o:.2f} s (median of {args.repeat}), {len(oi)} points; "
                              f"ratio {t_n / t_o:.1f}x (CPU time: {c_n:.1f} s / {c_o:.2f} s = "
                              f"{c_n / c_o:.1f}x)")
    return {"generate": t_gen, **res}


def basis_rows(n: int, lo: int, hi: int, k: int) -> np.ndarray:
    """Rows [lo, hi) of a smooth (n, k) basis: damped cosines with seeded phases (no ties)."""
    rng = np.random.default_rng(7)
    phase, decay = rng.random(k) * 2 * np.pi, 1 + rng.random(k)
    s = (np.arange(lo, hi) + 0.5) / n
    return np.cos(np.pi * np.outer(s, np.arange(k)) + phase) * np.exp(-np.outer(s, decay))


def run_deim() -> dict:
    n, k = args.rows, args.basis
    lo, hi = even_split(n, comm.size)[comm.rank:comm.rank + 2]
    U = basis_rows(n, lo, hi, k)
    res = {}
    for name, fn in (("qdeim", qdeim), ("deim", deim)):
        times = []
        for _ in range(args.repeat):
            t, idx = timed(lambda fn=fn: fn(U, comm=comm))
            times.append(t)
        res[name] = {"time": float(np.median(times)), "times": times, "first": idx[:5].tolist()}
        rank0_print(comm, f"  {name}: {res[name]['time']:.2f} s (median of {args.repeat})")
    if comm.size == 1:
        t, piv = timed(lambda: sla.qr(U.T, pivoting=True, mode="r")[1][:k])
        same = piv.tolist() == qdeim(U).tolist()
        res["scipy_qr_pivoting"] = {"time": t, "same_points_as_qdeim": same}
        rank0_print(comm, f"  scipy qr(U.T, pivoting=True): {t:.2f} s, same points: {same}")
    return res


def main() -> None:
    RESULTS.mkdir(exist_ok=True)
    load0 = os.getloadavg()             # other jobs on the machine move the timings
    res = run_ecm() if args.what == "ecm" else run_deim()
    size = f"{args.points}" if args.what == "ecm" else f"{args.rows}x{args.basis}"
    out = {"config": {**vars(args), "ranks": comm.size, "cpu_count": os.cpu_count(),
                      "numpy": np.__version__, "python": platform.python_version(),
                      "loadavg_1min_start_end": [load0[0], os.getloadavg()[0]]},
           "results": res}
    if comm.rank == 0:
        path = RESULTS / f"hyper-{args.what}-{size}-{comm.size}.json"
        path.write_text(json.dumps(out, indent=1))
        print(f"wrote {path}")


if __name__ == "__main__":
    main()

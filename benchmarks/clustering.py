"""Local reduced bases benchmark: quality (held-out errors), criterion, and timing.

    python benchmarks/clustering.py quality            # tables of docs/local-bases.md (serial)
    python benchmarks/clustering.py timing [--rows 1000000 --cols 2000]
    mpiexec -n 2 python benchmarks/clustering.py timing --rows 1000000 --cols 2000

quality: on the synthetic regimes problem (rom.clustering.synthetic), for the same k and
the same total number of modes, the mean and max relative projection error of HELD-OUT
snapshots on the local basis chosen by the online selector: sine vs Euclidean clustering
vs one global basis (with the per-query size and with the total size), over 5 train/test
seed pairs; then the a priori criterion against the speed-up measured on held-out data.
Writes benchmarks/results/clustering-quality.json.

timing: clustering time for m snapshots of N rows. The snapshot rows are generated and
consumed in chunks (the matrix is never stored whole), so N = 10^6 and m = 2000 fit in
memory: the Gram matrix (the dominant cost, one Allreduce), the dissimilarity matrix and
k-medoids. Then the whole build_local_bases pipeline (local PODs included) on --pipeline-rows
rows, with the count of m x m Gram matrices computed (1 with gram=None, 0 when the Gram is
passed in). Writes benchmarks/results/clustering-timing-<ranks>.json.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")          # before numpy: one BLAS thread per rank
os.environ.setdefault("OPENBLAS_NUM_THREADS", os.environ["OMP_NUM_THREADS"])

import numpy as np
from mpi4py import MPI

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import rom.clustering as C
from rom.linalg import pod
from rom.parallel import even_split

RESULTS = Path(__file__).resolve().parent / "results"
comm = MPI.COMM_WORLD


def out(*a):
    if comm.rank == 0:
        print(*a, flush=True)


# ----------------------------------------------------------------------------- quality
def heldout_errors(train, test, k, budget, name, level="snapshots"):
    """Held-out relative errors with k local bases of budget // k modes each."""
    n_c = budget // k
    groups = train.simulation if level == "simulations" else None
    lb = C.build_local_bases(train.X, k=k, dissimilarity=name, level=level, groups=groups,
                             rtol=1e-12, max_modes=n_c)
    metric = "euclidean" if name == "euclidean" else "sine"
    if level == "snapshots":
        choice = lb.selector(train.features, metric=metric).select(test.features)
    else:                                    # one choice per held-out simulation
        choice = lb.selector(train.simulation_features, metric=metric).select(
            test.simulation_features)[test.simulation]
    err = lb.projection_errors(test.X, choice)
    regime_of_cluster = np.array([np.bincount(train.regime[lb.column_labels == c],
                                              minlength=3).argmax() for c in range(k)])
    return err, float(np.mean(regime_of_cluster[choice] == test.regime)), lb


def quality(args):
    cases = {"regimes, amplitudes 0.3-3": {"amplitude_range": (0.3, 3.0)},
             "regimes, amplitudes 0.03-30": {"amplitude_range": (0.03, 30.0)},
             "regimes, constant amplitude": {"amplitude_range": (1.0, 1.0)}}
    seeds = range(args.seeds)
    k, table, report = 3, [], {}
    for case, kw in cases.items():
        for level in ("snapshots", "simulations"):
            for budget in (15, 30):
                rows = {}
                methods = ["sine", "euclidean"] if level == "snapshots" else \
                    ["grassmann", "projection", "euclidean"]
                for name in methods:
                    stats = []
                    for s in seeds:
                        tr = C.synthetic_regimes(60, 5, seed=2 * s, **kw)
                        te = C.synthetic_regimes(30, 5, seed=2 * s + 1, **kw)
                        err, acc, _ = heldout_errors(tr, te, k, budget, name, level)
                        stats.append((err.mean(), err.max(), acc))
                    rows[name] = np.mean(stats, axis=0).tolist() + [stats]
                for n in (budget // k, budget):
                    stats = []
                    for s in seeds:
                        tr = C.synthetic_regimes(60, 5, seed=2 * s, **kw)
                        te = C.synthetic_regimes(30, 5, seed=2 * s + 1, **kw)
                        g = pod(tr.X, rtol=1e-12, max_modes=n)
                        e = C.projection_errors(te.X, np.zeros(te.X.shape[1], int), [g.modes])
                        stats.append((e.mean(), e.max(), np.nan))
                    rows[f"global {n}"] = np.mean(stats, axis=0).tolist() + [stats]
                for name, (mean, mx, acc, per_seed) in rows.items():
                    table.append((case, level, budget, name, mean, mx, acc))
                report[f"{case} | {level} | {budget}"] = {
                    name: {"mean": r[0], "max": r[1], "selection_accuracy": r[2],
                           "per_seed": r[3]} for name, r in rows.items()}
    out(f"\nheld-out projection errors, k={k}, budget = total modes (budget/k per local basis),"
        f" mean over {len(seeds)} seed pairs (60 training / 30 held-out simulations x 5 steps);"
        "\n'pure' = fraction of held-out snapshots sent to a cluster whose majority regime is theirs")
    out(f"{'case':<30s} {'level':<12s} {'budget':>6s} {'method':<12s} {'mean err':>9s} "
        f"{'max err':>9s} {'pure':>6s}")
    for case, level, budget, name, mean, mx, acc in table:
        out(f"{case:<30s} {level:<12s} {budget:>6d} {name:<12s} {mean:>9.2e} {mx:>9.2e} "
            + ("     -" if np.isnan(acc) else f"{acc:>6.2f}"))
    crit = criterion_table()
    return {"heldout": report, "criterion": crit}


def criterion_table():
    rng = np.random.default_rng(5)
    U = np.linalg.qr(rng.standard_normal((400, 12)))[0] * 0.7 ** np.arange(12)
    flat = (U @ rng.standard_normal((12, 300)), U @ rng.standard_normal((12, 150)))
    sets = {}
    for label, kw in (("regimes 0.3-3", {}), ("regimes const", {"amplitude_range": (1, 1)}),
                      ("one regime", {"n_regimes": 1})):
        tr, te = C.synthetic_regimes(60, 5, seed=0, **kw), C.synthetic_regimes(30, 5, seed=1, **kw)
        sets[label] = (tr.X, tr.features, te.X, te.features)
    sets["one subspace"] = (flat[0], flat[0][::40].T, flat[1], flat[1][::40].T)
    rows = []
    out("\na priori criterion (training snapshots only) vs speed-up measured on held-out snapshots"
        "\n(cost model W(n) = n^3/3 + p n^2 + 100 p, p = 2n; threshold 1.5)")
    out(f"{'data':<14s} {'eps':>6s} {'k':>2s} {'n_g':>4s} {'n_c (train)':<18s} {'redund':>6s} "
        f"{'S pred':>7s} {'n_g':>4s} {'n_c (held-out)':<18s} {'S meas':>7s} {'agree':>5s}")
    for label, (Xtr, Ftr, Xte, Fte) in sets.items():
        G = C.snapshot_gram(Xtr)
        glob = pod(Xtr, rtol=0.0)
        for eps in (1e-2, 1e-3, 1e-4):
            for k in (2, 3, 4, 6):
                lb = C.build_local_bases(Xtr, k=k, rtol=eps, gram=G)
                pred = C.efficiency_criterion(G, lb.columns, rtol=eps)
                local = [pod(Xtr[:, c], rtol=0.0).modes for c in lb.columns]
                choice = lb.selector(Ftr).select(Fte)
                n_g, n_c, meas = C.measured_speedup(glob.modes, local, Xte, choice, rtol=eps)
                agree = pred.pays_off == (meas >= pred.threshold)
                rows.append({"data": label, "eps": eps, "k": k, "n_global": pred.n_global,
                             "n_local": pred.n_local.tolist(), "redundancy": pred.redundancy,
                             "predicted": pred.speedup, "n_global_heldout": n_g,
                             "n_local_heldout": n_c.tolist(), "measured": meas,
                             "agree": bool(agree)})
                out(f"{label:<14s} {eps:>6.0e} {k:>2d} {pred.n_global:>4d} "
                    f"{pred.n_local.tolist()!s:<18s} {pred.redundancy:>6.2f} "
                    f"{pred.speedup:>7.2f} {n_g!s:>4s} {n_c.tolist()!s:<18s} {meas:>7.2f} "
                    f"{'yes' if agree else 'NO':>5s}")
    ratio = np.array([r["measured"] / r["predicted"] for r in rows])
    out(f"agreement on 'pays off': {sum(r['agree'] for r in rows)}/{len(rows)}; measured/predicted"
        f" speed-up: median {np.median(ratio):.2f}, range {ratio.min():.2f}-{ratio.max():.2f}")
    return rows


# ----------------------------------------------------------------------------- timing
class Clock:
    """Wall and CPU (process) time of a block, max over ranks: under a loaded machine the
    CPU time still shows the work per rank."""

    def __init__(self):
        self.times = {}

    def __call__(self, name):
        clock = self

        class _Block:
            def __enter__(self):
                comm.Barrier()
                self.t = (time.perf_counter(), time.process_time())

            def __exit__(self, *exc):
                comm.Barrier()
                wall = time.perf_counter() - self.t[0]
                cpu = time.process_time() - self.t[1]
                clock.times[name] = (comm.allreduce(wall, op=MPI.MAX),
                                     comm.allreduce(cpu, op=MPI.MAX))
        return _Block()


def streamed_gram(n_rows, m, chunk):
    """Gram of the synthetic snapshots over this rank's rows, generated chunk by chunk.
    Returns G and the (wall, cpu) seconds spent generating rows and in the products."""
    off = even_split(n_rows, comm.size)
    lo, hi = int(off[comm.rank]), int(off[comm.rank + 1])
    G = np.zeros((m, m))
    gen, mul = np.zeros(2), np.zeros(2)
    for a in range(lo, hi, chunk):                         # loop over row chunks
        t0 = np.array([time.perf_counter(), time.process_time()])
        Xc = C.synthetic_regimes(m // 5, 5, n_points=n_rows, rows=(a, min(a + chunk, hi))).X
        t1 = np.array([time.perf_counter(), time.process_time()])
        G += Xc.T @ Xc
        mul += np.array([time.perf_counter(), time.process_time()]) - t1
        gen += t1 - t0
    t0 = time.perf_counter()
    comm.Allreduce(MPI.IN_PLACE, G, op=MPI.SUM)
    t_red = time.perf_counter() - t0
    both = np.concatenate([gen, mul])
    comm.Allreduce(MPI.IN_PLACE, both, op=MPI.MAX)
    return G, both[:2], both[2:], t_red


def timing(args):
    m, k = args.cols, args.k
    clock = Clock()
    load0 = os.getloadavg()[0]
    with clock("gram"):
        G, gen, mul, t_red = streamed_gram(args.rows, m, args.chunk)
    with clock("dissimilarity"):
        D = C.sine_dissimilarity(G)
    with clock("kmedoids"):
        km = C.kmedoids(D, k, seed=0)
    # whole pipeline on fewer rows (X held in memory), counting the m x m Gram matrices
    import rom.linalg.distributed as dist
    n = args.pipeline_rows
    off = even_split(n, comm.size)
    X = C.synthetic_regimes(m // 5, 5, n_points=n,
                            rows=(int(off[comm.rank]), int(off[comm.rank + 1]))).X
    counts = []
    orig = dist.gram
    dist.gram = lambda A, B=None, comm=None: (counts.append(A.shape[1]) if B is None else None,
                                              orig(A, B, comm))[1]
    try:
        with clock("pipeline"):
            lb = C.build_local_bases(X, comm=comm, k=k, rtol=1e-4)
        n_full = counts.count(m)
        with clock("snapshot_gram"):
            Gp = C.snapshot_gram(X, comm=comm)
        counts.clear()
        with clock("pipeline_with_gram"):
            C.build_local_bases(X, comm=comm, k=k, rtol=1e-4, gram=Gp)
        n_full_g = counts.count(m)
    finally:
        dist.gram = orig
    load1 = os.getloadavg()[0]
    t = clock.times
    out(f"\nclustering {m} snapshots x {args.rows} rows on {comm.size} rank(s), "
        f"{os.environ['OMP_NUM_THREADS']} BLAS thread(s) per rank, load average {load0:.1f} -> "
        f"{load1:.1f} on {os.cpu_count()} cores\n  {'step':<44s} {'wall s':>8s} {'cpu s/rank':>10s}")
    rows = [("Gram, streamed (total)", t["gram"]), ("  generating the synthetic rows", gen),
            ("  products X_c^T X_c", mul), ("  the one Allreduce (wall)", (t_red, np.nan)),
            ("sine dissimilarity", t["dissimilarity"]),
            (f"k-medoids, k={k}, PAM ({km.n_iter} swaps)", t["kmedoids"]),
            (f"build_local_bases, {n} rows ({n_full} m x m Gram)", t["pipeline"]),
            (f"  its Gram alone (snapshot_gram, {n} rows)", t["snapshot_gram"]),
            (f"build_local_bases with gram= ({n_full_g} m x m Gram)", t["pipeline_with_gram"])]
    for name, (wall, cpu) in rows:
        out(f"  {name:<44s} {wall:8.2f} " + ("         -" if np.isnan(cpu) else f"{cpu:10.2f}"))
    out(f"  cluster sizes {km.sizes.tolist()}, local modes {lb.n_modes.tolist()}")
    return {"ranks": comm.size, "threads": int(os.environ["OMP_NUM_THREADS"]), "rows": args.rows,
            "cols": m, "k": k, "load_average": [load0, load1],
            "wall_cpu_s": {name: [float(v) for v in tc] for name, tc in rows},
            "kmedoids_swaps": km.n_iter, "cluster_sizes": km.sizes.tolist(),
            "pipeline_rows": n, "full_grams_computed": n_full,
            "full_grams_computed_with_gram": n_full_g, "local_modes": lb.n_modes.tolist()}


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("what", choices=["quality", "timing"])
    p.add_argument("--rows", type=int, default=1_000_000)
    p.add_argument("--cols", type=int, default=2000)
    p.add_argument("--k", type=int, default=3)
    p.add_argument("--chunk", type=int, default=20_000)
    p.add_argument("--pipeline-rows", type=int, default=20_000)
    p.add_argument("--seeds", type=int, default=5)
    args = p.parse_args()
    if args.what == "quality":
        if comm.size > 1:
            raise SystemExit("quality runs serially")
        result, name = quality(args), "clustering-quality.json"
    else:
        result, name = timing(args), f"clustering-timing-{comm.size}.json"
    if comm.rank == 0:
        RESULTS.mkdir(exist_ok=True)
        result = {"benchmark": args.what, "host": platform.node(), "python": sys.version.split()[0],
                  "date": time.strftime("%Y-%m-%d %H:%M:%S"), **result}
        (RESULTS / name).write_text(json.dumps(result, indent=1, default=float))
        out(f"wrote {RESULTS / name}")


if __name__ == "__main__":
    main()

"""Local reduced models against the global reduced model, on the two-regime plate_creep
case of tests/test_online_local.py (4 hot-spot + 4 through-thickness-gradient training
loadings, ``--k`` clusters of simulations), at growing mesh sizes.

    python benchmarks/online_local.py [--sizes ci 16x6x2 32x12x4] [--k 2] [--repeat 5]
                                      [--random 4] [--out benchmarks/results/online-local.json]

For each size (cells along x, y, z of the notched bar, cases/plate_creep/make_mesh.py):
run the 8 training loadings with the serial PETSc solver, run the offline stage (global
model and local models, ``online.local: true``), then for three queries (inside the
hot-spot regime, inside the gradient regime, and one that jumps from the first to the
second after t = 10 s) solve with the global model and with the local models and compare
with the full-order solution: modes and reduced points, online time per step (median
over ``--repeat`` solves of the mean wall time of a step; minimum of the CPU time of the
whole solve per step, selection included), relative errors (max over steps of
displacement and p), models used, switches, flagged steps, high-fidelity steps with
``enrich=True``; and
``--random`` held-out queries per regime: is a model of the right regime selected, errors.
Serial, one BLAS thread. Writes ``--out`` (JSON).
"""
from __future__ import annotations

import argparse
import io
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _timed(solves, repeat: int):
    """For each solve: (result, median wall s per step, min CPU s per step) over ``repeat``
    solves (the CPU time of the whole solve, selection included; its minimum is the least
    disturbed by other processes on a shared machine). The solves alternate, so that all
    see the same load."""
    import numpy as np
    walls, cpus = [[] for _ in solves], [[] for _ in solves]
    for _ in range(repeat):  # loop over repetitions
        for j, solve in enumerate(solves):  # loop over the models compared
            c0 = time.process_time()
            res = solve()
            cpus[j].append((time.process_time() - c0) / (res.times.size - 1))
            extra = getattr(res, "selection_seconds", 0.0)
            walls[j].append((res.step_seconds[1:].sum() + extra) / (res.times.size - 1))
    return [(solve(), float(np.median(w)), float(np.min(c)))
            for solve, w, c in zip(solves, walls, cpus)]


def run_size(size: str, repeat: int, work: Path, k: int, n_random: int) -> dict:
    import meshio
    from mpi4py import MPI

    sys.path.insert(0, str(ROOT / "cases" / "plate_creep"))
    sys.path.insert(0, str(ROOT / "tests"))
    from make_mesh import make
    from test_online_common import errors, reference, run_fom
    from test_online_local import GRAD, GRAD_F, HOT, HOT_F, MOVE, TIMES, two_regime_case

    from rom.config import load_case
    from rom.offline import run
    from rom.online import load, load_local

    case_file = two_regime_case(work / size)
    case_file.write_text(case_file.read_text().replace("clustering: {k: 2,",
                                                       f"clustering: {{k: {k},"))
    if size != "ci":                   # "ci": the case's own mesh (cases/plate_creep/mesh.inp)
        meshio.write(case_file.parent / "mesh.inp", make(tuple(int(v) for v in size.split("x"))))
    t0 = time.perf_counter()
    run_fom(case_file)
    hf_step = (time.perf_counter() - t0) / (8 * (TIMES.size - 1))
    t0 = time.perf_counter()
    off = run(load_case(case_file), MPI.COMM_SELF, progress=False, out=io.StringIO())
    offline = time.perf_counter() - t0
    glob, local = load(off.online), load_local(off.online_local)
    crit = next((x.strip() for x in off.lines if "predicted speed-up" in x), "")
    row = {"size": size, "k": k, "criterion": crit, "dofs": 3 * glob.meta["n_nodes"],
           "n_qp": glob.meta["n_qp"], "hf_s_per_step": hf_step, "offline_s": offline, "timings": off.timings,
           "global": {"modes": glob.n_modes, "points": glob.n_points},
           "local": {"modes": local.n_modes, "points": local.n_points,
                     "sensors": int(local.sensors.size), "labels": local.labels.tolist()},
           "queries": {}}
    for name, f in (("hot", HOT), ("grad", GRAD), ("move", MOVE)):  # loop over queries
        ref = reference(glob, f, TIMES)
        (g, g_wall, g_cpu), (lo, l_wall, l_cpu) = _timed(
            [lambda f=f: glob.solve(f, TIMES), lambda f=f: local.solve(f, TIMES)], repeat)
        mesh_read = any(m.mesh_loaded for m in local.models)
        eg = max(e.max() for e in errors(g, ref))
        el = max(e.max() for e in errors(lo, ref))
        enr = load_local(off.online_local).solve(f, TIMES, enrich=True)
        ee = max(e.max() for e in errors(enr, ref))
        row["queries"][name] = {
            "global": {"s_per_step": g_wall, "cpu_s_per_step": g_cpu, "error": eg,
                       "indicator_max": float(g.indicator[1:].max())},
            "local": {"s_per_step": l_wall, "cpu_s_per_step": l_cpu, "error": el,
                      "indicator_max": float(lo.indicator[1:].max()),
                      "models": lo.model_index.tolist(), "flagged": lo.flagged,
                      "switches": [(s["step"], s["from"], s["to"]) for s in lo.switches],
                      "tries": int(lo.tries[1:].sum()), "mesh_read": mesh_read},
            "local_enriched": {"error": ee, "hf_steps": len(enr.enrichments),
                               "models": enr.model_index.tolist(),
                               "switches": [(s["step"], s["from"], s["to"])
                                            for s in enr.switches]}}
    # held-out queries drawn around the training ranges: is the model chosen a model of
    # the query's regime (majority of its training loadings: 0-3 hot spot, 4-7 gradient)?
    import numpy as np
    regime_of = [int(np.mean(local.labels[4:] == c) > np.mean(local.labels[:4] == c))
                 for c in range(local.k)]
    rng = np.random.default_rng(0)
    rand = []
    for j in range(2 * n_random):  # loop over random queries, alternating regimes
        T0, A = rng.uniform(780, 970), rng.uniform(150, 350)
        f = (HOT_F if j % 2 == 0 else GRAD_F).format(T0=T0, A=A)
        ref = reference(glob, f, TIMES)
        lo, g = local.solve(f, TIMES), glob.solve(f, TIMES)
        rand.append({"regime": j % 2, "selected": int(lo.model_index[0]),
                     "right": regime_of[int(lo.model_index[0])] == j % 2,
                     "error_local": max(e.max() for e in errors(lo, ref)),
                     "error_global": max(e.max() for e in errors(g, ref)),
                     "flagged_local": len(lo.flagged),
                     "flagged_global": int(np.sum(g.indicator[1:] > glob.meta["indicator_tol"])),
                     "switches": len(lo.switches)})
    row["random"] = rand
    return row


def print_table(rows: list[dict]) -> None:
    print("\nmodes and points (global | local per model), clusters of the 8 loadings")
    print(f"{'dofs':>7} {'n_qp':>6} {'HF ms/step':>10}  {'global':>12}  local")
    for r in rows:
        g, lo = r["global"], r["local"]
        print(f"{r['dofs']:>7} {r['n_qp']:>6} {1e3 * r['hf_s_per_step']:>10.1f}  "
              f"{g['modes']:>3} m {g['points']:>4} p  modes {lo['modes']}, points "
              f"{lo['points']}, {lo['sensors']} sensors, clusters {lo['labels']}")
        print(f"{'':>27}{r['criterion']}")
    print("\nper query: online ms/step, median wall (min CPU), max relative error over steps")
    print(f"{'dofs':>7} {'query':>5}  {'global ms':>14} {'err':>8}  {'local ms':>14} "
          f"{'err':>8}  models / flagged | enrich=True: err, HF steps")
    for r in rows:
        for name, q in r["queries"].items():
            g, lo, e = q["global"], q["local"], q["local_enriched"]
            used = sorted(set(lo["models"][1:]))
            print(f"{r['dofs']:>7} {name:>5}  {1e3 * g['s_per_step']:>6.2f} "
                  f"({1e3 * g['cpu_s_per_step']:>5.2f}) {g['error']:>8.1e}  "
                  f"{1e3 * lo['s_per_step']:>6.2f} ({1e3 * lo['cpu_s_per_step']:>5.2f}) "
                  f"{lo['error']:>8.1e}  {used} / {len(lo['flagged'])} | "
                  f"{e['error']:.1e}, {e['hf_steps']}")
    print("\nheld-out random queries (T0 in [780, 970] K, amplitude in [150, 350] K): right "
          "regime selected, max error local | global, steps flagged local | global, switches")
    for r in rows:
        q = r["random"]
        if q:
            print(f"{r['dofs']:>7}  {sum(x['right'] for x in q)}/{len(q)}  "
                  f"{max(x['error_local'] for x in q):.1e} | "
                  f"{max(x['error_global'] for x in q):.1e}  "
                  f"{sum(x['flagged_local'] for x in q)} | "
                  f"{sum(x['flagged_global'] for x in q)}  {sum(x['switches'] for x in q)}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", nargs="+", default=["ci", "16x6x2"],
                    help="NXxNYxNZ cells of make_mesh.py, or ci (the case's mesh.inp)")
    ap.add_argument("--repeat", type=int, default=5, help="online solves timed")
    ap.add_argument("--k", type=int, default=2, help="number of clusters (local models)")
    ap.add_argument("--random", type=int, default=4,
                    help="held-out random queries per regime (selection, errors)")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks/results/online-local.json")
    args = ap.parse_args()
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = "1"
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for size in args.sizes:  # loop over mesh sizes
            rows.append(run_size(size, args.repeat, Path(tmp), args.k, args.random))
            print(f"{size}: done", file=sys.stderr, flush=True)
    print_table(rows)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"machine": platform.platform(), "rows": rows}, indent=1))
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()

"""Online benchmark: reduced time per step against high-fidelity time per step, the offline
build at 1 and several ranks, and the cost of one enrichment, on cases/plate_creep at
growing mesh sizes.

    python benchmarks/online.py [--sizes 8x3x1 16x6x2 32x12x4] [--ranks 1 2] [--repeat 3]
                                [--enrich-max-dofs N] [--threads 1] [--out FILE.json]

For each size (cells along x, y, z of the notched bar): run the 4 training loadings with
the serial PETSc solver (HF time per step = total / steps); build the reduced model with
``mpiexec -n r`` for each r of ``--ranks`` (``--repeat`` builds each, median of the
in-process wall time of ``build_reduced_model`` from the store to the written file, and
the largest peak RSS over the ranks); check that the models built at different rank
counts give the same online answer; unless the size exceeds ``--enrich-max-dofs``, an
enriched solve of an outside query (seconds per enrichment: HF step + basis update + ECM,
against one HF step). Then the reduced solve of an inside query is timed for all sizes
interleaved (``--repeat`` rounds over the sizes after a warm-up round, so that the load of
a shared machine hits every size alike): median of the mean wall time per step, and of
the CPU time of the whole solve per step. Target (issue 5): >= 100x at 1e5 dofs, online
time per step flat within 25 %. Writes ``--out`` (JSON).

Internal mode (run by the above under mpiexec): ``online.py --build CASE --model PATH``.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def build_once(case: Path, model: Path, repeat: int) -> None:
    """Build under mpiexec; rank 0 prints one JSON line (times, peak RSS)."""
    import resource

    from rom.config import load_case
    from rom.online import OnlineConfig, build_reduced_model
    from rom.parallel import world
    comm = world()
    times = []
    for _ in range(repeat):  # loop over repetitions
        comm.Barrier()
        t0 = time.perf_counter()
        build_reduced_model(load_case(case), comm, OnlineConfig(indicator_tol=5e-4), path=model)
        comm.Barrier()
        times.append(time.perf_counter() - t0)
    rss = comm.gather(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0, root=0)
    if comm.rank == 0:
        print("BUILD " + json.dumps({"times": times, "peak_rss_mb": rss}), flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", nargs="+", default=["8x3x1", "16x6x2", "32x12x4"])
    ap.add_argument("--ranks", nargs="+", type=int, default=[1, 2],
                    help="rank counts of the offline build")
    ap.add_argument("--repeat", type=int, default=3, help="builds and online solves timed")
    ap.add_argument("--enrich-max-dofs", type=float, default=float("inf"),
                    help="time an enriched solve only up to this many dofs (0: never)")
    ap.add_argument("--threads", type=int, default=1, help="BLAS threads")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks/results/online.json")
    ap.add_argument("--build", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--model", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args()
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = str(args.threads)
    if args.build is not None:
        build_once(args.build, args.model, args.repeat)
        return
    import meshio
    import numpy as np
    from mpi4py import MPI

    sys.path.insert(0, str(ROOT / "cases" / "plate_creep"))
    sys.path.insert(0, str(ROOT / "tests"))
    from make_mesh import make
    from test_online_common import INSIDE, OUTSIDE, TIMES

    import rom.fom.solver  # noqa: F401 - PETSc before timing
    from rom.fom.run import load_fom_case, run_case
    from rom.online import load

    bindir = Path(sys.executable).parent
    mpiexec = shutil.which("mpiexec", path=str(bindir)) or shutil.which("mpiexec")
    rows, timed = [], []
    for size in args.sizes:  # loop over mesh sizes
        n = tuple(int(a) for a in size.split("x"))
        with tempfile.TemporaryDirectory() as tmp:
            tmp = Path(tmp)
            meshio.write(tmp / "mesh.inp", make(n))
            text = (ROOT / "cases/plate_creep/case.yaml").read_text()
            (tmp / "case.yaml").write_text(text.replace("../../out/plate_creep", "out"))
            fc = load_fom_case(tmp / "case.yaml")
            t0 = time.perf_counter()
            run_case(fc, MPI.COMM_SELF, progress=False)
            n_steps = len(fc.fom.loadings) * fc.loading.times.steps
            hf_step = (time.perf_counter() - t0) / n_steps
            build = {}
            for r in args.ranks:  # loop over rank counts of the offline build
                cmd = [mpiexec, "-n", str(r), sys.executable, __file__, "--build",
                       str(tmp / "case.yaml"), "--model", str(tmp / f"model-{r}.rom.h5"),
                       "--repeat", str(args.repeat), "--threads", str(args.threads)]
                out = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, check=False)
                line = [x for x in out.stdout.splitlines() if x.startswith("BUILD ")]
                if out.returncode or not line:
                    sys.exit(f"build on {r} ranks failed:\n{out.stdout}\n{out.stderr}")
                b = json.loads(line[0][6:])
                build[r] = {"median_s": float(np.median(b["times"])), "times_s": b["times"],
                            "peak_rss_mb": max(b["peak_rss_mb"])}
            models = {r: load(tmp / f"model-{r}.rom.h5") for r in args.ranks}
            model = models[args.ranks[0]]
            ref = model.solve(INSIDE, TIMES)
            rank_diff = 0.0                    # same online answer whatever the build's ranks
            for other in list(models.values())[1:]:
                res = other.solve(INSIDE, TIMES)
                rank_diff = max(rank_diff, max(
                    np.linalg.norm(res.displacement(i) - ref.displacement(i))
                    / np.linalg.norm(ref.displacement(i)) for i in range(1, TIMES.size)))
            timed.append(model)                # timed below, all sizes interleaved
            enrich_s, n_enr = float("nan"), 0
            dofs = 3 * model.meta["n_nodes"]
            if dofs <= args.enrich_max_dofs:
                enr = load(tmp / f"model-{args.ranks[0]}.rom.h5").solve(
                    OUTSIDE, TIMES, enrich=True, tol=1e-4)
                n_enr = len(enr.enrichments)
                if enr.enrichments:
                    enrich_s = float(np.mean([e["seconds"] for e in enr.enrichments]))
            rows.append({"size": size, "dofs": dofs, "points": model.meta["n_qp"],
                         "hf_step_s": hf_step, "build": {str(r): v for r, v in build.items()},
                         "build_rank_diff": rank_diff, "modes": model.n_modes,
                         "reduced_points": model.n_points, "n_enrichments": n_enr,
                         "enrichment_s": None if n_enr == 0 else enrich_s,
                         "enrichment_over_hf": None if n_enr == 0 else enrich_s / hf_step})
        r = rows[-1]
        builds = "  ".join(f"build {k} rk {v['median_s']:6.2f} s ({v['peak_rss_mb']:.0f} MB)"
                           for k, v in r["build"].items())
        print(f"{r['dofs']:>8d} dofs {r['points']:>8d} pts  HF {r['hf_step_s'] * 1e3:9.1f} "
              f"ms/step  {r['modes']} modes {r['reduced_points']} points  {builds}  rank "
              f"diff {r['build_rank_diff']:.1e}  enrichment "
              f"{r['enrichment_over_hf'] or float('nan'):.1f} HF steps", flush=True)
    # online time per step, sizes interleaved (round-robin) so that the load of a shared
    # machine affects every size alike
    wall = [[] for _ in timed]
    cpu = [[] for _ in timed]
    its = [0.0 for _ in timed]
    for rnd in range(args.repeat + 1):  # loop over rounds (round 0: warm-up)
        for k, model in enumerate(timed):  # loop over sizes
            c0 = time.process_time()
            res = model.solve(INSIDE, TIMES)
            c1 = time.process_time()
            if rnd:
                wall[k].append(float(res.step_seconds[1:].mean()))
                cpu[k].append((c1 - c0) / (TIMES.size - 1))
                its[k] = float(np.mean(res.newton_iterations[1:]))
    print("    dofs   HF ms/step   online ms/step (wall, cpu)   Newton its/step   speedup")
    for r, w, c, it in zip(rows, wall, cpu, its):
        r.update(online_step_s=float(np.median(w)), online_cpu_step_s=float(np.median(c)),
                 online_step_all_s=w, newton_per_step=it)
        r["speedup"] = r["hf_step_s"] / r["online_step_s"]
        print(f"{r['dofs']:>8d} {r['hf_step_s'] * 1e3:12.1f} {r['online_step_s'] * 1e3:10.2f} "
              f"{r['online_cpu_step_s'] * 1e3:8.2f} {it:18.2f} {r['speedup']:12.1f}")
    flat = max(r["online_step_s"] for r in rows) / min(r["online_step_s"] for r in rows)
    flat_cpu = (max(r["online_cpu_step_s"] for r in rows)
                / min(r["online_cpu_step_s"] for r in rows))
    print(f"online time per step: max/min over sizes = {flat:.2f} wall, {flat_cpu:.2f} cpu "
          "(target <= 1.25)")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"rows": rows, "flatness": flat, "flatness_cpu": flat_cpu,
                                    "threads": args.threads, "ranks": args.ranks,
                                    "repeat": args.repeat, "command": " ".join(sys.argv),
                                    "machine": platform.node()}, indent=1))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()

"""Online benchmark: reduced time per step against high-fidelity time per step, and the
cost of one enrichment, on cases/plate_creep at growing mesh sizes (serial).

    python benchmarks/online.py [--sizes 8x3x1 16x6x2 32x12x4 48x18x6] [--threads 1]

For each size (cells along x, y, z of the notched bar): run the 4 training loadings with
the PETSc solver (HF time per step = total / steps), build the reduced model, time the
reduced solve of an inside query (time per step, mean of the steps), and an enriched
solve of an outside query (seconds per enrichment: HF step + basis update + ECM, against
one HF step). Target (issue 5): >= 100x at 1e5 dofs, online time per step flat within
25 %. Writes benchmarks/results/online.json.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", nargs="+", default=["8x3x1", "16x6x2", "32x12x4"])
    ap.add_argument("--threads", type=int, default=1, help="BLAS threads")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks/results/online.json")
    args = ap.parse_args()
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = str(args.threads)
    import meshio
    import numpy as np
    from mpi4py import MPI

    sys.path.insert(0, str(ROOT / "cases" / "plate_creep"))
    sys.path.insert(0, str(ROOT / "tests"))
    from make_mesh import make
    from test_online_common import INSIDE, OUTSIDE, TIMES

    import rom.fom.solver  # noqa: F401 - PETSc before timing
    from rom.config import load_case
    from rom.fom.run import load_fom_case, run_case
    from rom.online import OnlineConfig, build_reduced_model, load

    rows = []
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
            t0 = time.perf_counter()
            path = build_reduced_model(load_case(tmp / "case.yaml"), None,
                                       OnlineConfig(indicator_tol=5e-4))
            build_s = time.perf_counter() - t0
            model = load(path)
            model.solve(INSIDE, TIMES)                       # warm-up
            res = [model.solve(INSIDE, TIMES) for _ in range(3)]
            online_step = float(np.median([r.step_seconds[1:].mean() for r in res]))
            enr = model.solve(OUTSIDE, TIMES, enrich=True, tol=1e-4)
            enrich_s = float(np.mean([e["seconds"] for e in enr.enrichments])) \
                if enr.enrichments else float("nan")
            dofs = 3 * model.meta["n_nodes"]
            rows.append({"size": size, "dofs": dofs, "hf_step_s": hf_step,
                         "online_step_s": online_step, "speedup": hf_step / online_step,
                         "build_s": build_s, "modes": load(path).n_modes,
                         "points": load(path).n_points, "n_enrichments": len(enr.enrichments),
                         "enrichment_s": enrich_s, "enrichment_over_hf": enrich_s / hf_step})
        r = rows[-1]
        print(f"{r['dofs']:>8d} dofs  HF {r['hf_step_s'] * 1e3:9.2f} ms/step  online "
              f"{r['online_step_s'] * 1e3:7.3f} ms/step  speedup {r['speedup']:8.1f}  "
              f"{r['modes']} modes {r['points']} points  enrichment "
              f"{r['enrichment_over_hf']:.1f} HF steps", flush=True)
    flat = max(r["online_step_s"] for r in rows) / min(r["online_step_s"] for r in rows)
    print(f"online time per step: max/min over sizes = {flat:.2f} (target <= 1.25)")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"rows": rows, "flatness": flat, "threads": args.threads,
                                    "machine": platform.node()}, indent=1))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()

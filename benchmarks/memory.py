"""Peak memory per rank of ``rom.offline`` and of a ``rom.study`` query with enrichment, at
P ranks on blade sizes; the fit ``a + b N / P`` of each stage.

    python benchmarks/memory.py --sizes 1 2 3 --ranks 1 2 4 [--out benchmarks/results/memory.json]
                                [--resume]

For each size: the mesh (``cases/blade/make_mesh.py``), the demo's 9 training loadings
(``rom.fom`` on 2 ranks with ``--resume``: kept in ``out/memory/size<s>/`` between runs),
and the full-order answer of the first study query (one ``rom.study --limit 1`` run,
stored by the study). Then for each P, measured with ``mpiexec -n P /usr/bin/time``:
``rom.offline`` (POD, ECM, training check, cross-validation, file) and ``rom.study
--limit 1`` (the model loaded by rows, the query without and with enrichment; its
full-order answer read from the store, so the run holds the reduced model, not a
full-order query). Peak RSS of every rank, CPU seconds per rank, wall seconds.

The fit: peak = a + b N / P by least squares over the sizes and rank counts of a stage
(N the dofs); ``a`` is what does not shrink with the ranks (Python, PETSc, MPI, the mesh
read on every rank), ``b N / P`` the distributed part. Printed with the prediction at
5e6 dofs on 64 ranks, and written to the JSON.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}


def case_file(size: int, work: Path) -> Path:
    """The demo case on the size-``size`` mesh, its outputs in ``work/size<size>``, its
    full-order solver (training, the enrichment's steps) GAMG as in ``cases/blade/size4.yaml``:
    the demo's ASM + Cholesky holds a factor per rank whose fill grows faster than N / P,
    which no ``a + b N / P`` describes (and which does not run at size 4)."""
    d = (work / f"size{size}").resolve()
    d.mkdir(parents=True, exist_ok=True)
    mesh = ROOT / "cases/blade/mesh.inp" if size == 1 else d / "mesh.inp"
    if not mesh.is_file():
        run([sys.executable, str(ROOT / "cases/blade/make_mesh.py"), "--size", str(size),
             "-o", str(mesh)], d / "mesh.log")
    path = d / "case.yaml"
    demo = ROOT / "cases/blade/demo.yaml"
    path.write_text(f"# written by benchmarks/memory.py\nextends: {demo}\n"
                    f"mesh: {mesh}\nsnapshots: {{store: {d / 'blade.snapshots.h5'}}}\n"
                    f"output: {{directory: {d}}}\nfom: {{petsc_options: {{pc_type: gamg}}}}\n")
    return path


def run(cmd: list[str], log: Path) -> str:
    """Run ``cmd`` with its output appended to ``log``; raise with the log's tail on error."""
    with open(log, "a") as f:
        f.write(f"\n$ {' '.join(cmd)}\n")
        f.flush()
        p = subprocess.run(cmd, stdout=f, stderr=subprocess.STDOUT, env=ENV, cwd=ROOT)
    if p.returncode:
        tail = log.read_text().splitlines()[-15:]
        raise SystemExit(f"failed ({p.returncode}): {' '.join(cmd)}\n" + "\n".join(tail))
    return log.read_text()


def measured(module: str, args: list[str], ranks: int, log: Path) -> dict:
    """Peak RSS [MB] and CPU [s] of every rank, and the wall time, of ``python -m module``
    (``/usr/bin/time -o`` one file per rank: their lines would interleave on a shared
    output)."""
    base = log.with_name(f"time-{module}-{ranks}")
    for old in base.parent.glob(base.name + ".*"):
        old.unlink()
    cmd = [str(BIN / "mpiexec"), "-n", str(ranks), "sh", "-c",
           'exec /usr/bin/time -f "%M %U %S" -o "$0.$PMI_RANK" "$@"', str(base),
           str(BIN / "python"), "-m", module, *args]
    t0 = time.perf_counter()
    run(cmd, log)
    wall = time.perf_counter() - t0
    rows = [base.with_name(f"{base.name}.{r}").read_text().split()[-3:] for r in range(ranks)]
    return {"peak_mb": [int(r[0]) / 1024 for r in rows],
            "cpu_s": [float(r[1]) + float(r[2]) for r in rows], "wall_s": wall}


def dofs(case: Path) -> int:
    sys.path.insert(0, str(ROOT))
    from rom.config import load_case
    from rom.io.mesh import read_mesh
    return 3 * len(read_mesh(load_case(case).mesh).points)


def fit(points: list[tuple[int, int, float]]) -> dict:
    """Least squares of peak = a + b N / P over (N, P, peak)."""
    N, P, y = (np.array(v, float) for v in zip(*points))
    A = np.column_stack([np.ones_like(N), N / P])
    (a, b), *_ = np.linalg.lstsq(A, y, rcond=None)
    res = y - A @ [a, b]
    return {"a_mb": float(a), "b_mb_per_dof": float(b), "max_residual_mb": float(np.abs(res).max()),
            "predicted_mb_5e6_dofs_64_ranks": float(a + b * 5e6 / 64)}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[1, 2, 3])
    ap.add_argument("--ranks", type=int, nargs="+", default=[1, 2, 4])
    ap.add_argument("--work", type=Path, default=ROOT / "out/memory")
    ap.add_argument("--out", type=Path, default=None, help="JSON results")
    ap.add_argument("--resume", action="store_true",
                    help="keep the measurements already in --out, take only the missing ones")
    args = ap.parse_args(argv)
    out = {"machine": platform.node(), "sizes": {}, "fits": {}}
    if args.resume and args.out and args.out.is_file():
        out = json.loads(args.out.read_text())
    for s in args.sizes:  # loop over mesh sizes
        case = case_file(s, args.work)
        log = case.parent / "memory.log"
        rows = out["sizes"].setdefault(str(s), {"dofs": dofs(case), "offline": {}, "study": {}})
        print(f"size {s}: {rows['dofs']:,} dofs; training (rom.fom, 2 ranks, --resume) ...",
              flush=True)
        run([str(BIN / "mpiexec"), "-n", "2", str(BIN / "python"), "-m", "rom.fom", str(case),
             "--resume"], log)
        for P in sorted(args.ranks):  # loop over rank counts
            for stage, module, extra in (("offline", "rom.offline", ["-q"]),
                                         ("study", "rom.study", ["--limit", "1", "--quiet"])):
                if str(P) in rows[stage]:
                    continue
                if stage == "study" and not rows["study"]:   # the query's full-order
                    run([str(BIN / "mpiexec"), "-n", "2", str(BIN / "python"), "-m",
                         "rom.study", str(case), "--limit", "1", "--quiet"], log)   # answer
                m = rows[stage][str(P)] = measured(module, [str(case), *extra], P, log)
                print(f"  {stage:8s} P={P}: peak {max(m['peak_mb']):7.0f} MB per rank "
                      f"(ranks {', '.join(f'{v:.0f}' for v in m['peak_mb'])}), CPU "
                      f"{max(m['cpu_s']):6.1f} s per rank, wall {m['wall_s']:6.1f} s",
                      flush=True)
                _save(out, args.out)         # after every measurement: nothing lost
    for stage in ("offline", "study"):
        pts = [(r["dofs"], int(P), max(m["peak_mb"])) for r in out["sizes"].values()
               for P, m in r[stage].items()]
        for s, r in out["sizes"].items():      # per size: a + c / P (a must not grow with N)
            own = [p for p in pts if p[0] == r["dofs"]]
            if len({p[1] for p in own}) > 1:
                f = out["fits"].setdefault(f"{stage}_per_size", {})[s] = fit(own)
                print(f"{stage} at size {s}: {f['a_mb']:.0f} MB + "
                      f"{f['b_mb_per_dof'] * r['dofs']:.0f} MB / P")
        if len({p[0] for p in pts}) > 1 or len({p[1] for p in pts}) > 1:
            f = out["fits"][stage] = fit(pts)
            print(f"{stage}: peak per rank = {f['a_mb']:.0f} MB + {f['b_mb_per_dof'] * 1e6:.0f} "
                  f"MB per 10^6 dofs / P (largest residual {f['max_residual_mb']:.0f} MB); at "
                  f"5e6 dofs on 64 ranks: {f['predicted_mb_5e6_dofs_64_ranks']:.0f} MB")
    _save(out, args.out)
    if args.out:
        print(f"wrote {args.out}")
    return 0


def _save(out: dict, path: Path | None) -> None:
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(json.dumps(out, indent=1))
        tmp.replace(path)


if __name__ == "__main__":
    sys.exit(main())

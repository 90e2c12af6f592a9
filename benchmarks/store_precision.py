"""Snapshot store in double against single precision (``snapshots.precision``): store size,
POD, ECM and the online errors of the study queries, both built and compared in one run.

    python benchmarks/store_precision.py [--case cases/plate_creep/case.yaml] [--np 1]
        [--work out/store_precision/plate_creep] [--limit N] [--threads 1]
        [--out benchmarks/results/store_precision.json]

For each precision (double, then single) a copy of ``--case`` (``extends:`` it, with its
own store, output directory and model under ``--work/<precision>``) goes through the
user's commands on ``--np`` ranks: ``python -m rom.fom case --overwrite``,
``python -m rom.offline case``, then the study of ``python -m rom.study case`` (run by this
script under mpiexec so that it prints its numbers; it writes the same report). The
single study reuses the double study's stored full-order answers (their key does not
depend on the store). Then, serially: the size of each store and of its fields; the
displacement and stress POD of the double store's snapshots against their float32
rounding at several tolerances (the reason displacement stays float64); the two reduced
models' modes, singular values and ECM points; their answers to the study queries
against each other (no full-order solve); and the errors against the full-order answers
reported by each study. Prints a table and writes ``--out`` (JSON).

Internal mode (run by the above under mpiexec): ``store_precision.py --study CASE``.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PRECISIONS = ("double", "single")


def study_once(case: Path, limit: int | None) -> None:
    """rom.study's work under mpiexec; rank 0 prints one JSON line per query."""
    from rom.parallel import world
    from rom.study.run import run_study
    comm = world()
    res = run_study(case, comm, progress=False, limit=limit)
    if comm.rank == 0:
        rows = [{"name": q.name, "family": q.family, "err_u": q.max_err[0], "err_p": q.max_err[1],
                 "indicator": float(max(q.indicator)), "diverged": q.diverged,
                 "err_u_enriched": None if q.err_u_enriched is None
                 else float(max(q.err_u_enriched)),
                 "err_p_enriched": None if q.err_p_enriched is None
                 else float(max(q.err_p_enriched)),
                 "enrichments": len(q.enrichments)} for q in res.queries]
        print("STUDY " + json.dumps({"tol": res.tol, "queries": rows}), flush=True)


def variant(case: Path, work: Path, precision: str) -> Path:
    """A case file extending ``case`` with its own store, outputs and model."""
    from rom.config import read_case_mapping
    base = read_case_mapping(case)
    mesh = (case.parent / base["mesh"]).resolve()
    d = (work / precision).resolve()
    d.mkdir(parents=True, exist_ok=True)
    name = base["name"]
    text = (f"extends: {case.resolve()}\nmesh: {mesh}\n"
            f"snapshots: {{store: {d / (name + '.snapshots.h5')}, precision: {precision}}}\n"
            f"output: {{directory: {d}}}\nonline: {{model: {d / (name + '.rom.h5')}}}\n")
    (d / "case.yaml").write_text(text)
    return d / "case.yaml"


def run(cmd: list[str], log: Path) -> float:
    """Run a command (output to ``log``); its wall time [s]; stop on failure."""
    t0 = time.perf_counter()
    with open(log, "a") as out:
        out.write("$ " + " ".join(cmd) + "\n")
        out.flush()
        rc = subprocess.run(cmd, stdout=out, stderr=subprocess.STDOUT, cwd=ROOT, check=False)
    if rc.returncode:
        sys.exit(f"failed ({rc.returncode}): {' '.join(cmd)}; see {log}")
    return time.perf_counter() - t0


def field_bytes(path: Path) -> dict:
    """Bytes on disk of each field's values, the file's size and the datasets' dtypes."""
    import h5py
    with h5py.File(path, "r") as f:
        fields = {n: {"bytes": int(g["values"].id.get_storage_size()),
                      "dtype": str(g["values"].dtype), "shape": list(g["values"].shape)}
                  for n, g in f["fields"].items()}
    return {"file_bytes": path.stat().st_size, "fields": fields}


def pod_rounding(store_path: Path) -> dict:
    """Modes and singular values of the POD of the double store's displacement and stress,
    as stored and rounded to float32, at several tolerances (the build's POD method)."""
    import numpy as np
    from mpi4py import MPI

    from rom import pod
    from rom.io.snapshots import SnapshotStore
    from rom.online.build import pod_method
    out = {}
    with SnapshotStore.open(store_path, comm=MPI.COMM_SELF) as st:
        for name in ("displacement", "stress"):
            X = st.read_global(name)
            X32 = X.astype(np.float32).astype(np.float64)
            rows = []
            for rtol in (1e-4, 1e-5, 1e-6, 1e-7, 1e-8):  # loop over tolerances
                a = pod(X, rtol=rtol, method=pod_method(rtol))
                b = pod(X32, rtol=rtol, method=pod_method(rtol))
                s, t = a.singular_values, b.singular_values
                k = min(s.size, t.size)
                # distance between the two bases: the largest sine of their principal angles
                # over the common number of modes
                c = np.linalg.svd(a.modes[:, :k].T @ b.modes[:, :k], compute_uv=False)
                # what matters for a reduced model: how well each basis represents the
                # (double) snapshots
                proj = [float(np.linalg.norm(X - V @ (V.T @ X)) / np.linalg.norm(X))
                        for V in (a.modes, b.modes)]
                rows.append({"proj_err_double": proj[0], "proj_err_single": proj[1],
                             "rtol": rtol, "method": pod_method(rtol), "modes_double": int(s.size),
                             "modes_single": int(t.size),
                             "sv_max_rel_diff": float(np.max(np.abs(s[:k] - t[:k]) / s[:k])),
                             "sv_last_rel_diff": float(abs(s[k - 1] - t[k - 1]) / s[k - 1]),
                             "subspace_sine": float(np.sqrt(max(0.0, 1 - c.min() ** 2)))})
            out[name] = {"rows": X.shape[0], "snapshots": X.shape[1],
                         "rounding_rel": float(np.linalg.norm(X32 - X) / np.linalg.norm(X)),
                         "pod": rows}
    return out


def compare_models(cases: dict, limit: int | None) -> dict:
    """The two reduced models' sizes and their answers to the study queries (serial,
    unenriched), the single one's against the double one's."""
    import numpy as np
    from mpi4py import MPI

    from rom.fom.run import load_fom_case
    from rom.online.model import case_model_path, load_for_case
    from rom.study.run import expand_queries, temperature_history
    comm = MPI.COMM_SELF
    fcs = {p: load_fom_case(c) for p, c in cases.items()}
    models = {p: load_for_case(fc.case, case_model_path(fc.case, cases[p], "comparison"))
              for p, fc in fcs.items()}
    fc = fcs["double"]
    times = fc.loading.times.array()
    sizes = {}
    for p, m in models.items():
        sizes[p] = {"modes": m.n_modes, "points": m.n_points,
                    "imposed": int(np.count_nonzero(m.operator.weights == 0)),
                    "p_modes": int(m.bases.psi_p.n_cols),
                    "z_modes": int(m.bases.psi_z.n_cols),
                    "stress_modes": int(m.bases.sigma.n_cols),
                    "phi_sv": np.asarray(m.bases.phi_sv).tolist(),
                    "psi_p_sv": np.asarray(m.bases.psi_p_sv).tolist(),
                    "indicator_tol": float(m.meta["indicator_tol"]),
                    "training_check": m.meta.get("training_check")}
        sizes[p]["training_check"] = json.loads(json.dumps(sizes[p]["training_check"],
                                                           default=lambda v: v.tolist()))
    d, s = sizes["double"], sizes["single"]
    k = min(len(d["phi_sv"]), len(s["phi_sv"]))
    sv_diff = {"phi_sv": float(np.max(np.abs(np.subtract(d["phi_sv"][:k], s["phi_sv"][:k]))
                                      / np.asarray(d["phi_sv"][:k])))}
    k = min(len(d["psi_p_sv"]), len(s["psi_p_sv"]))
    sv_diff["psi_p_sv"] = float(np.max(np.abs(np.subtract(d["psi_p_sv"][:k], s["psi_p_sv"][:k]))
                                       / np.asarray(d["psi_p_sv"][:k])))
    queries = []
    mesh = models["double"].mesh
    for q in expand_queries(fc.case.study)[:limit]:  # loop over study queries
        T = temperature_history(fc, q.temperature, mesh, times, comm)
        res = {p: m.copy().solve(T, times, scale=q.scale) for p, m in models.items()}
        n = times.size
        u = {p: [np.ravel(r.displacement(i)) for i in range(1, n)] for p, r in res.items()}
        pp = {p: [np.ravel(r.p(i)) for i in range(1, n)] for p, r in res.items()}
        nu = max(np.linalg.norm(x) for x in u["double"]) or 1.0
        npp = max(np.linalg.norm(x) for x in pp["double"]) or 1.0
        queries.append({
            "name": q.name, "family": q.family,
            "u_diff": float(max(np.linalg.norm(a - b) for a, b in zip(u["single"], u["double"]))
                            / nu),
            "p_diff": float(max(np.linalg.norm(a - b) for a, b in zip(pp["single"], pp["double"]))
                            / npp),
            "indicator_double": float(np.max(res["double"].indicator[1:])),
            "indicator_single": float(np.max(res["single"].indicator[1:]))})
    return {"models": sizes, "sv_max_rel_diff": sv_diff, "queries": queries}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--case", type=Path, default=ROOT / "cases/plate_creep/case.yaml")
    ap.add_argument("--np", type=int, default=1, help="ranks of rom.fom, rom.offline, study")
    ap.add_argument("--work", type=Path, default=None,
                    help="working directory (default out/store_precision/<case name>)")
    ap.add_argument("--limit", type=int, default=None, help="only the first study queries")
    ap.add_argument("--threads", type=int, default=1, help="BLAS threads")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks/results/store_precision.json")
    ap.add_argument("--study", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args()
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = str(args.threads)
    if args.study is not None:
        study_once(args.study, args.limit)
        return
    from rom.config import read_case_mapping
    name = read_case_mapping(args.case)["name"]
    stem = args.case.stem
    work = args.work or ROOT / "out" / "store_precision" / (
        name if stem == "case" else f"{name}-{stem}")
    work.mkdir(parents=True, exist_ok=True)
    bindir = Path(sys.executable).parent
    mpiexec = shutil.which("mpiexec", path=str(bindir)) or shutil.which("mpiexec")
    mpi = [mpiexec, "-n", str(args.np), sys.executable]
    limit = [] if args.limit is None else ["--limit", str(args.limit)]
    cases, seconds, studies = {}, {}, {}
    for prec in PRECISIONS:  # loop over precisions
        case = cases[prec] = variant(args.case, work, prec)
        log = case.parent / "log.txt"
        log.write_text("")
        if prec == "single":           # the full-order answers of the queries: reused
            src = cases["double"].parent / "report" / "references"
            dst = case.parent / "report" / "references"
            if src.is_dir():
                shutil.rmtree(dst, ignore_errors=True)
                shutil.copytree(src, dst)
        seconds[prec] = {
            "rom.fom": run(mpi + ["-m", "rom.fom", str(case), "--overwrite", "--quiet"], log),
            "rom.offline": run(mpi + ["-m", "rom.offline", str(case)], log)}
        t0 = time.perf_counter()
        out = subprocess.run(mpi + [__file__, "--study", str(case), "--threads",
                                    str(args.threads)] + limit,
                             capture_output=True, text=True, cwd=ROOT, check=False)
        seconds[prec]["rom.study"] = time.perf_counter() - t0
        line = [x for x in out.stdout.splitlines() if x.startswith("STUDY ")]
        if out.returncode or not line:
            sys.exit(f"study of {case} failed:\n{out.stdout}\n{out.stderr}")
        studies[prec] = json.loads(line[0][6:])
        print(f"{prec}: " + ", ".join(f"{k} {v:.1f} s" for k, v in seconds[prec].items()),
              flush=True)
    stores = {p: field_bytes(read_store(c)) for p, c in cases.items()}
    # the strain rom.fom stored before snapshots.strain: the shape of stress (6 per point)
    stores["double_with_strain_bytes"] = (stores["double"]["file_bytes"]
                                          + stores["double"]["fields"]["stress"]["bytes"])
    rounding = pod_rounding(read_store(cases["double"]))
    compared = compare_models(cases, args.limit)
    result = {"case": str(args.case), "ranks": args.np, "seconds": seconds, "stores": stores,
              "pod_rounding": rounding, "models": compared["models"],
              "sv_max_rel_diff": compared["sv_max_rel_diff"],
              "rom_vs_rom": compared["queries"], "studies": studies,
              "command": " ".join([Path(sys.executable).name] + sys.argv),
              "machine": platform.node()}
    report(result)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1))
    print(f"wrote {args.out}")


def read_store(case: Path) -> Path:
    from rom.config import load_case
    return Path(load_case(case).snapshots.store)


def report(r: dict) -> None:
    """The table printed at the end."""
    d, s = r["stores"]["double"], r["stores"]["single"]
    old = r["stores"]["double_with_strain_bytes"]
    print(f"\nstore: {d['file_bytes'] / 1e6:.2f} MB double, {s['file_bytes'] / 1e6:.2f} MB single "
          f"({s['file_bytes'] / d['file_bytes']:.2f}); with strain, as rom.fom wrote it before: "
          f"{old / 1e6:.2f} MB (+ the stress field's bytes)")
    for name in d["fields"]:
        a, b = d["fields"][name], s["fields"][name]
        print(f"  {name:22s} {a['bytes'] / 1e6:8.2f} MB {a['dtype']:8s} {b['bytes'] / 1e6:8.2f} MB "
              f"{b['dtype']}")
    for name, v in r["pod_rounding"].items():
        print(f"POD of {name} ({v['rows']} x {v['snapshots']}), float32 rounding "
              f"{v['rounding_rel']:.1e} (relative Frobenius):")
        print("      rtol  method     modes d/s   max sv diff   last sv diff   subspace sine"
              "   projection error d/s")
        for row in v["pod"]:
            print(f"  {row['rtol']:8.0e}  {row['method']:9s} {row['modes_double']:5d} "
                  f"{row['modes_single']:4d}   {row['sv_max_rel_diff']:11.1e}   "
                  f"{row['sv_last_rel_diff']:12.1e}   {row['subspace_sine']:13.1e}   "
                  f"{row['proj_err_double']:9.2e} {row['proj_err_single']:9.2e}")
    md, ms = r["models"]["double"], r["models"]["single"]
    print("reduced model        double   single")
    for key in ("modes", "p_modes", "z_modes", "stress_modes", "points", "imposed"):
        print(f"  {key:18s} {md[key]:6d}   {ms[key]:6d}")
    print(f"  singular values: largest relative difference phi {r['sv_max_rel_diff']['phi_sv']:.1e}"
          f", psi_p {r['sv_max_rel_diff']['psi_p_sv']:.1e}")
    print("query         e_u double  e_u single  e_p double  e_p single  |u_s-u_d|  |p_s-p_d|"
          "  enr d/s")
    qd = {q["name"]: q for q in r["studies"]["double"]["queries"]}
    qs = {q["name"]: q for q in r["studies"]["single"]["queries"]}
    for q in r["rom_vs_rom"]:
        a, b = qd[q["name"]], qs[q["name"]]
        print(f"  {q['name']:10s} {a['err_u']:11.3e} {b['err_u']:11.3e} {a['err_p']:11.3e} "
              f"{b['err_p']:11.3e} {q['u_diff']:10.1e} {q['p_diff']:10.1e}  "
              f"{a['enrichments']}/{b['enrichments']}")


if __name__ == "__main__":
    main()

"""Reduced-step benchmark: time per step of the reduced Newton on a case's reduced model,
as ``rom.online`` runs it (``fast``: the isotropic laws' three-term tangent in single
precision, the previous step's tangent for the first iteration), with a
fresh double-precision tangent at every iteration (``exact``), and with the general 6 x 6
form of the tangent (``general``, also exact).

    python benchmarks/reduced_step.py [--case cases/blade/case.yaml] [--queries inside hotter]
                                      [--repeat 15] [--base REV] [--out FILE.json]

``--base REV``: also the ``fast`` Newton of ``rom/online/solve.py`` as it was at git
revision REV (``base``; the rest of the package is this tree's), to measure a change of
the reduced Newton against what it replaced in the same run.

Needs the case's reduced model (``rom.offline``). One process, no enrichment: for every
query, ``--repeat`` rounds of the three variants interleaved (so that the load of a shared
machine hits them alike); medians of the wall and CPU time of the whole solve per step,
the Newton iterations, and the largest difference of the displacements from the ``exact``
variant's (they must agree to the Newton tolerance). Then the parts of one Newton iteration on a
step of the first query: the law (both outputs) and the reduced tangent (both forms).
Writes ``--out`` (JSON) and prints a table.
"""
from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import numpy as np
from mpi4py import MPI

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from rom.online import solve as online_solve  # noqa: E402
from rom.study.run import study_inputs, temperature_history  # noqa: E402


def _median_ms(f, k: int) -> float:
    ts = []
    for _ in range(k):  # loop over repeats
        t0 = time.process_time()
        f()
        ts.append(time.process_time() - t0)
    return float(np.median(ts)) * 1e3


def _base_step(rev: str):
    """``reduced_step`` of rom/online/solve.py at git revision ``rev`` (imported as a module
    of this tree's package, so that its relative imports resolve here)."""
    import importlib.util
    import subprocess
    import tempfile
    src = subprocess.run(["git", "-C", str(ROOT), "show", f"{rev}:rom/online/solve.py"],
                         check=True, capture_output=True, text=True).stdout
    name = "rom.online._solve_base"          # a submodule name: relative imports resolve
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "_solve_base.py"
        path.write_text(src)
        spec = importlib.util.spec_from_file_location(name, path)
        mod = importlib.util.module_from_spec(spec)
        sys.modules[name] = mod              # dataclasses look their module up
        spec.loader.exec_module(mod)
    return mod.reduced_step


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--case", default=str(ROOT / "cases/blade/case.yaml"))
    ap.add_argument("--queries", nargs="+", default=["inside", "hotter"])
    ap.add_argument("--repeat", type=int, default=15)
    ap.add_argument("--base", default=None, help="git revision of rom/online/solve.py to "
                                                  "compare with (variant 'base')")
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    base_step = _base_step(args.base) if args.base else None
    inp = study_inputs(args.case, MPI.COMM_SELF)
    model, times = inp.model, inp.times
    law, steps = model.law, times.size - 1
    specs = {q.name: q for q in inp.queries}
    fast_step = online_solve.reduced_step

    def exact_step(model, st, T, t_new, scale):
        return online_solve._newton(model, st, T, t_new, scale, fast=False)
    out = {"case": args.case, "machine": platform.node(), "repeat": args.repeat,
           "base": args.base,
           "n_modes": model.n_modes, "n_points": model.n_points, "queries": {}}
    print(f"{args.case}: {model.n_modes} modes, {model.n_points} reduced points, "
          f"{steps} steps, one process")
    print(f"{'query':>8} {'variant':>8} {'wall ms/step':>13} {'CPU ms/step':>12} {'Newton':>7}")
    for name in args.queries:  # loop over queries
        q = specs[name]
        T = temperature_history(inp.fc, q.temperature, inp.mesh, times, MPI.COMM_SELF)
        rows = {v: {"wall": [], "cpu": []}
                for v in ("fast", "exact", "general") + (("base",) if base_step else ())}
        u = {}
        for _ in range(args.repeat + 1):  # loop over rounds (the first: warm-up)
            for v in rows:  # loop over variants
                law.split_tangent = v != "general"
                online_solve.reduced_step = {"fast": fast_step, "base": base_step}.get(
                    v, exact_step)
                w0, c0 = time.perf_counter(), time.process_time()
                res = model.solve(T, times, scale=q.scale, enrich=False, verbose=False)
                rows[v]["wall"].append((time.perf_counter() - w0) / steps * 1e3)
                rows[v]["cpu"].append((time.process_time() - c0) / steps * 1e3)
                rows[v]["newton"] = int(res.newton_iterations.sum())
                u[v] = np.array([res.displacement(i) for i in range(1, times.size)])
        rec = {}
        for v, r in rows.items():  # loop over variants
            rec[v] = {"wall_ms_per_step": float(np.median(r["wall"][1:])),
                      "cpu_ms_per_step": float(np.median(r["cpu"][1:])),
                      "newton_iterations": r["newton"]}
            print(f"{name:>8} {v:>8} {rec[v]['wall_ms_per_step']:13.2f} "
                  f"{rec[v]['cpu_ms_per_step']:12.2f} {r['newton']:7d}")
        rec["max_rel_displacement_difference"] = {v: float(
            np.abs(u[v] - u["exact"]).max() / np.abs(u["exact"]).max()) for v in rows if v != "exact"}
        out["queries"][name] = rec
    del law.split_tangent                                  # back to the class's value
    online_solve.reduced_step = fast_step
    # the parts of one Newton iteration, on a hold step of the first query
    q = specs[args.queries[0]]
    T = temperature_history(inp.fc, q.temperature, inp.mesh, times, MPI.COMM_SELF)
    i = min(4, steps)
    red = model.operator
    st = online_solve.StepState(float(times[0]), np.zeros(model.n_modes),
                                np.zeros((model.n_points, 6)), law.initial_state(model.n_points))
    T_M = [online_solve.temperature_at_points(model.operator, T, float(t), j)
           for j, t in enumerate(times[:i + 1])]
    for j in range(1, i + 1):  # loop over the steps up to i
        prev = st
        st, _ = online_solve.reduced_step_cut(model.operator, st, T_M[j - 1], T_M[j],
                                              float(times[j]), q.scale)
    eps0, z0, eps1, T_M = prev.eps, prev.z, st.eps, T_M[i]
    dt = float(times[i] - times[i - 1])
    k = 5 * args.repeat
    _, _, Ds = law.integrate(eps0, eps1, z0, T_M, dt, split_tangent=True)
    parts = {"law_split_ms": _median_ms(
                 lambda: law.integrate(eps0, eps1, z0, T_M, dt, split_tangent=True), k),
             "law_general_ms": _median_ms(lambda: law.integrate(eps0, eps1, z0, T_M, dt), k),
             "tangent_split_single_ms": _median_ms(
                 lambda: online_solve.reduced_tangent(red, Ds, single=True), k),
             "tangent_split_ms": _median_ms(
                 lambda: online_solve.reduced_tangent(red, Ds), k),
             "tangent_general_ms": _median_ms(
                 lambda: online_solve.reduced_tangent(red, Ds.full()), k)}
    out["one_iteration_cpu"] = parts
    print("one Newton iteration (CPU ms, step %d of %s): " % (i, args.queries[0]) +
          ", ".join(f"{key[:-3]} {val:.3f}" for key, val in parts.items()))
    if args.out:
        Path(args.out).write_text(json.dumps(out, indent=1))
        print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

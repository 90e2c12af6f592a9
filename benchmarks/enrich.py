"""Enrichment benchmark: what one enrichment costs, split, against the full-order step.

    python benchmarks/enrich.py [--case cases/blade/case.yaml] [--queries hotter random]
                                [--repeat 3] [--out FILE.json]

Needs the case's reduced model (``rom.offline``) and, for the comparison with the
full-order query, the full-order answers of a ``rom.study`` run
(``<output>/<study.report>/references``; without them the split is printed alone). For
every query: ``--repeat`` enriched solves on one process, each from a fresh copy of the
model (the first solve also pays the full-order solver set-up; it is reported apart;
``--repeat 0``: only that one). Per enrichment: total, full-order step, bases, ECM
seconds (medians over the repeats, per event). Per query: the wall time of the enriched
solve against the full-order solve of the whole query (stored, on the ranks it was run
on), and the peak resident memory. Writes ``--out`` (JSON) and prints a table.
"""
from __future__ import annotations

import argparse
import json
import platform
import resource
import sys
import time
from pathlib import Path

import numpy as np
from mpi4py import MPI

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from rom.study.references import mesh_digest, reference_key  # noqa: E402
from rom.study.run import study_inputs, temperature_history  # noqa: E402

SPLIT = ("seconds", "full_order_step_seconds", "bases_seconds", "ecm_seconds")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--case", default=str(ROOT / "cases/blade/case.yaml"))
    ap.add_argument("--queries", nargs="+", default=["hotter", "random"])
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    comm = MPI.COMM_SELF
    inp = study_inputs(args.case, comm)
    fc, mesh, times, base, store = inp.fc, inp.mesh, inp.times, inp.model, inp.store
    tol = float(base.meta["indicator_tol"])
    sha = mesh_digest(mesh)
    specs = {q.name: q for q in inp.queries}
    result = {"case": args.case, "n_dofs": 3 * mesh.n_nodes, "tol": tol,
              "machine": platform.node(), "repeat": args.repeat, "queries": {}}
    first = True
    for name in args.queries:  # loop over queries
        q = specs[name]
        ref, why = store.load(name, reference_key(fc, q, times, sha))
        if ref is None:
            print(f"{name}: no stored full-order answer ({why}): the split only", flush=True)
        T = temperature_history(fc, q.temperature, mesh, times, comm)
        runs, walls = [], []
        for k in range(args.repeat + (1 if first else 0)):  # loop over repeats
            model = base.copy()
            t0 = time.perf_counter()
            res = model.solve(T, times, scale=q.scale, enrich=True, tol=tol, comm=comm,
                              verbose=False)
            wall = time.perf_counter() - t0
            if first and k == 0:          # full-order solver set-up: reported apart
                result["first_solve_with_setup"] = {"query": name, "seconds": wall,
                                                    "events": res.enrichments}
                _print_events(f"{name} (first solve, with the solver set-up): {wall:.1f} s",
                              res.enrichments)
                continue
            runs.append(res.enrichments)
            walls.append(wall)
        first = False
        if not runs:
            continue
        n_ev = min(len(r) for r in runs)
        events = [{key: float(np.median([r[e][key] for r in runs])) for key in SPLIT}
                  | {"step": runs[0][e]["step"], "n_points": runs[0][e]["n_points"]}
                  for e in range(n_ev)]
        row = {"events": events, "enriched_solve_seconds": float(np.median(walls))}
        line = f"{name}: enriched solve {np.median(walls):.1f} s (median of {len(walls)})"
        if ref is not None:
            hf_query = float(np.sum(ref.seconds))
            row |= {"full_order_query_seconds": hf_query, "full_order_ranks": ref.ranks,
                    "full_order_step_seconds_median": float(np.median(ref.seconds)),
                    "speedup_with_enrichment": hf_query / float(np.median(walls))}
            line += (f" against the full-order query {hf_query:.1f} s on {ref.ranks} rank(s) "
                     f"(step {np.median(ref.seconds):.2f} s): "
                     f"{hf_query / np.median(walls):.2f}x")
        result["queries"][name] = row
        _print_events(line, events)
    result["peak_rss_gib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    print(f"peak resident memory {result['peak_rss_gib']:.1f} GiB", flush=True)
    if args.out:
        Path(args.out).write_text(json.dumps(result, indent=1))
    return 0


def _print_events(line: str, events: list[dict]) -> None:
    print(line, flush=True)
    for ev in events:
        print(f"  step {ev['step']}: {ev['seconds']:.1f} s = full-order step "
              f"{ev['full_order_step_seconds']:.1f} + bases {ev['bases_seconds']:.1f} + "
              f"ECM {ev['ecm_seconds']:.1f} (+ rest); {ev['n_points']} points", flush=True)


if __name__ == "__main__":
    raise SystemExit(main())

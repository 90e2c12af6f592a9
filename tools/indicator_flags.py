"""Which held-out queries a reduced model flags, without running the full-order solver.

    python tools/indicator_flags.py cases/blade/large.yaml \
        [--errors cases/blade/results/size2-enriched/report.md] [--tol T] [--json F]

Solves every query of the case's ``study:`` section with the case's reduced model (no
enrichment; seconds) and prints its largest indicator and whether it exceeds the model's
tolerance (or ``--tol``). With ``--errors``, the true errors of the queries are read from
the "Queries" table of an earlier study report of **the same model** (same modes and
reduced points: the tool checks that its indicators agree with the report's) and the
detection is scored as the study does: above target, flagged, missed, false alarms. This is
how a new tolerance rule is checked at a size where the full-order answers are no longer on
the machine (the blade at size 2: 23 full-order queries take about 75 min on 2 ranks).
Serial.
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
from mpi4py import MPI

from rom.study.report import detection
from rom.study.run import study_inputs, temperature_history


def report_errors(path: Path) -> dict[str, tuple[float, float, float]]:
    """``{query: (max e_u, max e_p, max indicator)}`` from a study report's Queries table."""
    rows, head = {}, None
    for line in path.read_text().splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if head is None and cells[:2] == ["query", "family"]:
            head = cells
        elif head is not None and line.startswith("|") and len(cells) == len(head):
            if set(cells[0]) <= set("-"):
                continue
            row = dict(zip(head, cells))
            rows[row["query"]] = tuple(float(row[k]) for k in
                                       ("max e_u", "max e_p", "max indicator"))
        elif head is not None and rows and not line.startswith("|"):
            break
    if not rows:
        raise SystemExit(f"{path}: no Queries table (| query | family | ... |)")
    return rows


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("case")
    ap.add_argument("--errors", type=Path, help="an earlier study report of the same model")
    ap.add_argument("--tol", type=float, help="indicator tolerance (default: the model's)")
    ap.add_argument("--json", type=Path, help="write the rows and the detection here")
    args = ap.parse_args()
    comm = MPI.COMM_SELF
    inp = study_inputs(args.case, comm)
    model = inp.model
    tol = float(model.meta["indicator_tol"]) if args.tol is None else args.tol
    known = report_errors(args.errors) if args.errors else {}
    kind = model.meta.get("indicator", "p")
    print(f"{inp.model_path}: {model.n_modes} modes, {model.n_points} points, indicator "
          f"{kind!r}, tolerance {tol:.3g}", flush=True)
    rows = []
    for q in inp.queries:  # loop over queries
        T = temperature_history(inp.fc, q.temperature, inp.mesh, inp.times, comm)
        t0 = time.perf_counter()
        res = model.solve(T, inp.times, scale=q.scale, comm=comm, verbose=False)
        row = {"query": q.name, "family": q.family, "indicator": float(np.max(res.indicator)),
               "ms_per_step": 1e3 * (time.perf_counter() - t0) / (inp.times.size - 1)}
        if q.name in known:
            row["err_u"], row["err_p"], row["report_indicator"] = known[q.name]
        rows.append(row)
        print(f"{q.name:8s} indicator {row['indicator']:.3e} "
              f"{'flagged' if row['indicator'] > tol else '       '}"
              + (f"  (report: e_u {row['err_u']:.2e}, e_p {row['err_p']:.2e}, indicator "
                 f"{row['report_indicator']:.2e})" if "err_u" in row else ""), flush=True)
    out = {"case": args.case, "model": str(inp.model_path), "indicator": kind,
           "n_modes": model.n_modes,
           "n_points": model.n_points, "tol": tol, "rows": rows}
    if known:
        scored = [r for r in rows if "err_u" in r]
        dev = max(abs(r["indicator"] / r["report_indicator"] - 1) for r in scored)
        study = SimpleNamespace(
            error_tol=(inp.cfg.error_tol_displacement, inp.cfg.error_tol_p), tol=tol,
            queries=[SimpleNamespace(name=r["query"], max_err=(r["err_u"], r["err_p"]),
                                     indicator=np.array([r["indicator"]])) for r in scored])
        det = detection(study)
        out["detection"] = {"queries": len(scored), "above_target": int(det["exceeds"].sum()),
                            "flagged": int(det["flagged"].sum()), "missed": det["missed"],
                            "false_alarms": det["false_alarms"],
                            "spearman": det["spearman"], "separating": det["separating"],
                            "indicator_vs_report_max_rel_diff": dev}
        print(f"{len(scored)} queries with known errors: {out['detection']['above_target']} "
              f"above target, {out['detection']['flagged']} flagged, missed {det['missed']}, "
              f"false alarms {det['false_alarms']}; Spearman {det['spearman']:.2f}; "
              f"indicators within {dev:.1e} (relative) of the report's")
        if dev > 5e-3:                   # (the report prints 3 significant digits)
            print("warning: the indicators differ from the report's: the errors hold only "
                  "for the same bases and points (another indicator kind on the same model, "
                  f"here {kind!r}, changes the indicators alone)")
    if args.json:
        args.json.write_text(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

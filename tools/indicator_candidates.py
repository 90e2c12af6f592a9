"""Compare candidate error indicators with the true errors on a case's held-out queries.

    python tools/indicator_candidates.py cases/blade/case.yaml [--json out.json]

Needs the reduced model (``rom.offline``) and the full-order answers a ``rom.study`` run
stored under ``<output>/<study.report>/references``. For every query the unenriched
reduced model is solved step by step and, at every step, two indicators computed from the
reduced points only (cost independent of the mesh):

- ``eta_p``: the model's indicator, relative Gappy-POD residual of p at the points;
- ``accumulated``: sum over the steps so far of the Gappy-POD residual of the increment of
  p at the points, relative to the largest ``|p_M|`` so far: the part of the creep
  increments the p basis cannot represent, accumulated as the creep error is
  (``online.indicator: accumulated``, :class:`rom.online.solve.AccumulatedIndicator`).

Prints per query the largest errors and indicators, then per indicator the Spearman rank
correlation with the largest error relative to its target (1 % u, 2 % p) and whether some
tolerance separates the queries above target from the others (read off these queries).
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
from mpi4py import MPI
from scipy.stats import spearmanr

from rom.online.solve import (AccumulatedIndicator, StepState, indicator, reduced_step_cut,
                              temperature_at_points)
from rom.online.training import TARGET_P, TARGET_U
from rom.study.references import mesh_digest, reference_key
from rom.study.run import study_inputs, temperature_history


def query_rows(model, T, times, scale, ref) -> np.ndarray:
    """(steps, 4): e_u, e_p, eta_p, accumulated, per step 1.."""
    op, B = model.operator, model.bases
    pts, pc = op.points, op.p_column
    nu = max(np.linalg.norm(u) for u in ref.u)
    npp = max(np.linalg.norm(p) for p in ref.p)
    gappy = op.gappy
    st = StepState(times[0], np.zeros(model.n_modes), np.zeros((pts.size, 6)),
                   model.law.initial_state(pts.size))
    T_prev = temperature_at_points(op, T, times[0], 0)
    accumulated, rows = AccumulatedIndicator(model.meta["dual_floor"]), []
    for i in range(1, times.size):  # loop over steps
        T_i = temperature_at_points(op, T, times[i], i)
        st, _ = reduced_step_cut(op, st, T_prev, T_i, times[i], scale)
        T_prev = T_i
        eta, c = indicator(op, st.z)
        acc = accumulated.step(gappy, st.z[:, pc])
        e_u = np.linalg.norm(B.phi.dot(st.q) - np.ravel(ref.u[i - 1])) / nu
        e_p = np.linalg.norm(B.psi_p.dot(c) - ref.p[i - 1]) / npp
        rows.append([e_u, e_p, eta, acc])
    return np.array(rows)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("case")
    ap.add_argument("--json", help="write the per-step rows of every query here")
    args = ap.parse_args()
    comm = MPI.COMM_SELF
    inp = study_inputs(args.case, comm)
    fc, mesh, times, model = inp.fc, inp.mesh, inp.times, inp.model
    sha, out = mesh_digest(mesh), {}
    for q in inp.queries:  # loop over queries
        ref, why = inp.store.load(q.name, reference_key(fc, q, times, sha))
        if ref is None:
            print(f"{q.name}: skipped ({why})")
            continue
        T = temperature_history(fc, q.temperature, mesh, times, comm)
        a = query_rows(model, T, times, q.scale, ref)
        out[q.name] = a
        print(f"{q.name:8s} e_u {a[:, 0].max():.2e}  e_p {a[:, 1].max():.2e}  "
              f"eta_p {a[:, 2].max():.2e}  accumulated {a[:, 3].max():.2e}", flush=True)
    if not out:
        return 1
    names = list(out)
    score = np.array([max(out[n][:, 0].max() / TARGET_U, out[n][:, 1].max() / TARGET_P)
                      for n in names])
    above = score > 1.0
    for j, label in ((2, "eta_p"), (3, "accumulated")):
        ind = np.array([out[n][:, j].max() for n in names])
        lo = float(ind[~above].max(initial=0.0))
        hi = float(ind[above].min(initial=np.inf))
        print(f"{label}: Spearman {spearmanr(ind, score).correlation:.3f}; largest within "
              f"target {lo:.3g}, smallest above {hi:.3g}: "
              + ("separated" if lo < hi else "no tolerance separates them"))
    if args.json:
        Path(args.json).write_text(json.dumps({n: out[n].tolist() for n in names}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

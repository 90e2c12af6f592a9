"""Where the reduced model's error comes from, query by query (error budget).

    python benchmarks/error_sources.py cases/blade/large.yaml --queries in6 in17 in3 \\
        [--json benchmarks/results/error-sources-blade-size2.json]

Needs the case's reduced model and the full-order answers a ``rom.study`` run stored
(``<output>/<study.report>/references``). Errors as the study's (relative to the largest
norm of the full-order field over the history, largest over the steps); for each query:

- ``rom``: the reduced model as it is (ECM quadrature, p by Gappy-POD from the points);
- ``full_integration``: the same modes, Galerkin with every integration point and its
  finite-element weight (no hyper-reduction), p integrated at every point: what the
  quadrature costs;
- ``projection``: the full-order displacement projected on the modes (the best the basis
  can do), and p at the reduced points obtained by integrating the law along the
  projected strains: what the Galerkin solution costs against the best approximation;
- ``p_basis``: the full-order p projected on the p basis, and its Gappy-POD from the true
  p at the reduced points: what the reconstruction of p costs.

Serial, O(N) per query step (a diagnostic, not an online cost).
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
from mpi4py import MPI

from rom.fom.discretization import ElementSet
from rom.online.build import reduced_operator
from rom.online.solve import temperature_at_points
from rom.online.training import history_errors
from rom.study.references import mesh_digest, reference_key
from rom.study.run import study_inputs, temperature_history


def budget(inp, model, full_red, q, ref) -> dict:
    comm = MPI.COMM_SELF
    times = inp.times
    T = temperature_history(inp.fc, q.temperature, inp.mesh, times, comm)
    phi, psi = model.bases.phi.local, model.bases.psi_p.local
    pts = model.operator.points
    law, pc = model.law, model.meta["p_column"]
    us = [np.ravel(u) for u in ref.u]
    nu = max(np.linalg.norm(u) for u in us)
    npp = max(np.linalg.norm(p) for p in ref.p)
    npm = max(np.linalg.norm(p[pts]) for p in ref.p)
    t0 = time.perf_counter()
    res = model.copy().solve(T, times, scale=q.scale)
    eu, ep = history_errors(res, ref.u, ref.p)
    rom_pm = max(np.linalg.norm(res.p_reduced[i] - p[pts]) / npm
                 for i, p in enumerate(ref.p, start=1))
    full = model.copy()
    full.operator = full_red
    rf = full.solve(T, times, scale=q.scale)
    fu, _ = history_errors(rf, ref.u, ref.p)
    fp = max(np.linalg.norm(rf.p_reduced[i] - p) / npp for i, p in enumerate(ref.p, start=1))
    # the law along the strains of the projected displacement, at the reduced points
    E = model.operator.E
    eps_old, z = np.zeros((pts.size, 6)), law.initial_state(pts.size)
    proj_u, proj_pm = [], []
    for i, u in enumerate(us, start=1):  # loop over steps
        c = phi.T @ u
        proj_u.append(np.linalg.norm(phi @ c - u) / nu)
        eps = (E @ c).reshape(-1, 6)
        _, z, _ = law.integrate(eps_old, eps, z, temperature_at_points(model.operator, T, times[i], i),
                                times[i] - times[i - 1])
        eps_old = eps
        proj_pm.append(np.linalg.norm(z[:, pc] - ref.p[i - 1][pts]) / npm)
    Q, _ = np.linalg.qr(psi)
    G = np.linalg.pinv(psi[pts])
    pb = max(np.linalg.norm(p - Q @ (Q.T @ p)) / npp for p in ref.p)
    pg = max(np.linalg.norm(p - psi @ (G @ p[pts])) / npp for p in ref.p)
    return {"rom": {"e_u": eu.max(), "e_p": ep.max(), "p_at_points": rom_pm},
            "full_integration": {"e_u": fu.max(), "e_p": fp},
            "projection": {"e_u": max(proj_u), "p_at_points": max(proj_pm)},
            "p_basis": {"projection": pb, "gappy_from_true_points": pg},
            "seconds": time.perf_counter() - t0}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("case")
    ap.add_argument("--queries", nargs="*", default=None, help="query names (default: all)")
    ap.add_argument("--json", default=None, help="write the results there")
    args = ap.parse_args(argv)
    inp = study_inputs(args.case, MPI.COMM_SELF)
    model = inp.model
    es = ElementSet(inp.mesh)
    B = model.bases
    full_red = reduced_operator(inp.mesh, B.phi, B.f_unit, B.psi_p, np.arange(es.n_qp),
                                es.weights(), np.zeros(0, np.int64), model.meta, model.law)
    sha = mesh_digest(inp.mesh)
    out = {"case": args.case, "n_modes": model.n_modes, "n_points": model.n_points,
           "n_qp": int(es.n_qp), "queries": {}}
    print("query   | rom e_u  e_p      p@pts    | full-int e_u e_p   | proj e_u  p@pts    "
          "| p basis proj gappy(true)")
    for q in inp.queries:  # loop over queries
        if args.queries and q.name not in args.queries:
            continue
        ref, why = inp.store.load(q.name, reference_key(inp.fc, q, inp.times, sha))
        if ref is None:
            print(f"{q.name}: no stored full-order answer ({why or 'run rom.study first'})")
            continue
        b = out["queries"][q.name] = budget(inp, model, full_red, q, ref)
        r, f, p, g = b["rom"], b["full_integration"], b["projection"], b["p_basis"]
        print(f"{q.name:7s} | {r['e_u']:.2e} {r['e_p']:.2e} {r['p_at_points']:.2e} | "
              f"{f['e_u']:.2e} {f['e_p']:.2e} | {p['e_u']:.2e} {p['p_at_points']:.2e} | "
              f"{g['projection']:.2e} {g['gappy_from_true_points']:.2e}", flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=1, default=float))
    return 0


if __name__ == "__main__":
    sys.exit(main())

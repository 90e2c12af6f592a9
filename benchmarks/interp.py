"""Operator interpolation benchmark: EIM decay, effectivities, classical vs stable bound, timings.

Run by hand (not a test): ``python benchmarks/interp.py [--quick] [--sizes 1e4 1e5 1e6]``.
Prints tables and writes ``benchmarks/results/interp.json`` (and PNG plots when matplotlib
is installed). Peers/bounds compared in the same run: the EIM training error against the
held-out error, the bound against the true error (effectivity >= 1, <= 2 in theory for the
Gaussian problem), the classical and stable residual norms against the explicit residual
dual norm, the online query against the high-fidelity solve (speedup).
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import scipy.sparse.linalg as spla

from rom.interp import build_rb, matrix_eim
from rom.interp.problems import gaussian_heat, thermal_block

OUT = Path(__file__).resolve().parent / "results"


def table(title, head, rows):
    print(f"\n## {title}\n")
    print("| " + " | ".join(head) + " |")
    print("|" + "---|" * len(head))
    for r in rows:
        print("| " + " | ".join(f"{v:.3g}" if isinstance(v, float) else str(v) for v in r) + " |")


def eim_decay(cells, widths, n_train):
    res = {}
    for w in widths:
        p = gaussian_heat(cells, width=w)
        eim = matrix_eim(p.assemble, p.sample(n_train, seed=1), tol=1e-12)
        test = [p.assemble(mu) for mu in p.sample(20, seed=99)]
        Ms = [m for m in (1, 2, 5, 10, 15, 20, 30, 40, 50, 60, 80) if m <= eim.n_terms]
        held = [max(eim.interpolation_error(A, n_terms=m) for A in test) for m in Ms]
        res[str(w)] = {"M": Ms, "train": [float(eim.errors[m]) for m in Ms], "held_out": held}
        table(f"matrix EIM error vs terms (gaussian_heat 2D, {p.n_dofs} dofs, w = {w}, "
              f"{n_train} training)", ["M", "train max-entry err", "held-out max-entry err"],
              list(zip(Ms, res[str(w)]["train"], held)))
    return res


def effectivities(cells, n_train, n_test):
    p = gaussian_heat(cells, width=0.2)
    t = time.perf_counter()
    model = build_rb(p.linear_problem(), p.sample(n_train, seed=1), product=p.product(),
                     coercivity=1.0, matrix_tol=1e-10, rhs_tol=1e-10, rb_tol=1e-6,
                     max_basis=30)
    offline = time.perf_counter() - t
    X = p.product()
    rows = []
    for mu in p.sample(n_test, seed=123):
        t = time.perf_counter()
        u = spla.spsolve(p.assemble(mu).tocsc(), p.rhs(mu))
        fom = time.perf_counter() - t
        r = model.solve(mu)
        e = u - r.field
        err = float(np.sqrt(e @ X @ e))
        rows.append([err / np.sqrt(u @ X @ u), r.error_bound / err, r.seconds, fom])
    a = np.array(rows)
    out = {"dofs": p.n_dofs, "matrix_terms": model.matrix_eim.n_terms,
           "rhs_terms": model.rhs_eim.n_terms, "basis": model.n_basis, "offline_s": offline,
           "offline_split_s": model.history["seconds"],
           "rel_error_max": float(a[:, 0].max()), "effectivity_min": float(a[:, 1].min()),
           "effectivity_mean": float(a[:, 1].mean()), "effectivity_max": float(a[:, 1].max()),
           "online_s_median": float(np.median(a[:, 2])), "fom_s_median": float(np.median(a[:, 3]))}
    out["speedup"] = out["fom_s_median"] / out["online_s_median"]
    table(f"held-out parameters (gaussian_heat 2D w=0.2, {p.n_dofs} dofs, basis {model.n_basis},"
          f" EIM {model.matrix_eim.n_terms}+{model.rhs_eim.n_terms} terms)",
          ["quantity", "value"], [[k, v] for k, v in out.items() if k != "offline_split_s"])
    return out


def classical_vs_stable(cells):
    tb = thermal_block(cells, (2, 2))
    model = build_rb(tb.linear_problem(), tb.sample(60, seed=1), product=tb.product(),
                     coercivity=tb.coercivity_lb, matrix_tol=1e-13, rhs_tol=1e-13,
                     rb_tol=1e-14, max_basis=40)
    X = tb.product().tocsc()
    lu = spla.splu(X)
    mu = tb.sample(3, seed=5)[1]
    A, f = tb.assemble(mu), tb.rhs(mu)
    u = spla.spsolve(A.tocsc(), f)
    unorm = np.sqrt(u @ X @ u)
    rows = []
    for n in range(1, model.n_basis + 1):
        rs, rc = model.solve(mu, n=n), model.solve(mu, n=n, estimator="classical")
        res = f - A @ rs.field
        ref = np.sqrt(max(res @ lu.solve(res), 0.0)) / rs.coercivity
        e = u - rs.field
        rows.append([n, float(np.sqrt(e @ X @ e) / unorm), float(ref / unorm),
                     rs.error_bound / unorm, rc.error_bound / unorm])
    table(f"thermal block ({tb.n_dofs} dofs): relative error and bounds vs basis size",
          ["n", "true error", "bound (explicit residual)", "bound stable", "bound classical"],
          rows)
    return {"mu": mu.tolist(), "rows": rows}


def eim_timing(sizes, trains):
    rows, out = [], []
    for N in sizes:
        cells = round(np.sqrt(N)) + 1
        p = gaussian_heat(cells, width=0.2)
        for K in trains:
            if N >= 10 ** 6 and K > 20:       # K x nnz values twice: stay well under 24 GiB
                continue
            P = p.sample(K, seed=1)
            t = time.perf_counter()
            mats = [p.assemble(mu) for mu in P]
            t_asm = time.perf_counter() - t
            t = time.perf_counter()
            eim = matrix_eim(mats, P, tol=1e-8, max_terms=K)
            t_eim = time.perf_counter() - t
            del mats
            mu = p.sample(1, seed=7)[0]
            _, c_hook = eim.magic_values(mu, entries=p.matrix_entries)
            _, c_asm = eim.magic_values(mu, assemble=p.assemble)
            t = time.perf_counter()
            spla.spsolve(p.assemble(mu).tocsc(), p.rhs(mu))
            t_fom = time.perf_counter() - t
            r = [p.n_dofs, K, eim.n_terms, t_asm, t_eim, c_hook.seconds, c_asm.seconds, t_fom]
            rows.append(r)
            out.append(dict(zip(["dofs", "K", "M", "assembly_s", "eim_s", "magic_hook_s",
                                 "magic_assembly_s", "fom_solve_s"], r)))
            print(f"  ... {p.n_dofs} dofs, K={K}: EIM {t_eim:.2f} s", flush=True)
    table("matrix EIM offline time and magic-value cost (serial)",
          ["dofs", "K train", "M terms", "assembly K mats [s]", "EIM greedy [s]",
           "magic values: hook [s]", "magic values: assembly [s]", "FOM solve [s]"], rows)
    return out


def plots(res):
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("(matplotlib not installed: no plots)")
        return
    fig, ax = plt.subplots(1, 2, figsize=(11, 4))
    for w, d in res["eim_decay"].items():
        ax[0].semilogy(d["M"], d["train"], "o-", label=f"train, w={w}")
        ax[0].semilogy(d["M"], d["held_out"], "x--", label=f"held-out, w={w}")
    ax[0].set(xlabel="EIM terms M", ylabel="relative max-entry error", title="matrix EIM")
    ax[0].legend()
    r = np.array(res["classical_vs_stable"]["rows"])
    for j, lab in [(1, "true error"), (2, "bound, explicit residual"), (3, "bound, stable"),
                   (4, "bound, classical")]:
        ax[1].semilogy(r[:, 0], np.maximum(r[:, j], 1e-17), "o-" if j != 4 else "s--", label=lab)
    ax[1].set(xlabel="basis size n", ylabel="relative X-norm", title="thermal block")
    ax[1].legend()
    fig.tight_layout()
    fig.savefig(OUT / "interp.png", dpi=110)
    print(f"wrote {OUT / 'interp.png'}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="small sizes (a minute)")
    ap.add_argument("--sizes", type=float, nargs="*", default=None,
                    help="matrix sizes for the EIM timing (default 1e4 1e5 1e6; quick: 1e4)")
    args = ap.parse_args()
    sizes = [int(s) for s in (args.sizes or ([1e4] if args.quick else [1e4, 1e5, 1e6]))]
    OUT.mkdir(parents=True, exist_ok=True)
    res = {"eim_decay": eim_decay(24 if args.quick else 40, [0.5, 0.2], 100 if args.quick
                                  else 200),
           "effectivity": effectivities(24 if args.quick else 40, 60, 10 if args.quick else 30),
           "classical_vs_stable": classical_vs_stable(16 if args.quick else 32),
           "eim_timing": eim_timing(sizes, [10, 20] if args.quick else [10, 20, 40])}
    online = res["effectivity"]["online_s_median"]
    table("speedup: RB online query (hooks; cost independent of N) vs FOM sparse direct solve",
          ["dofs", "FOM solve [s]", "RB online [s]", "speedup"],
          [[r["dofs"], r["fom_solve_s"], online, r["fom_solve_s"] / online]
           for r in res["eim_timing"] if r["K"] == 10])
    (OUT / "interp.json").write_text(json.dumps(res, indent=1, default=float))
    print(f"\nwrote {OUT / 'interp.json'}")
    plots(res)


if __name__ == "__main__":
    main()

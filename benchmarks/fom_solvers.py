"""Linear solvers of the full-order Newton on a case: time, Newton and KSP iterations.

    mpiexec -n 2 .venv/bin/python benchmarks/fom_solvers.py cases/blade/case.yaml
        [--query hotter] [--steps 8] [--sets NAME ...] [--out FILE.json]

Runs the first ``--steps`` time steps of one held-out query of the case's ``study:``
section (its temperature history as ``rom.study`` computes it) with each set of PETSc
options below, each with a fresh solver on the same mesh, material and loads, and prints
per set: wall time, Newton iterations, KSP iterations, halved steps, and the largest
displacement difference to the first set relative to the largest displacement (the
answers agree to the Newton tolerance unless a step was halved). The sets: the solver's
defaults (GAMG), GAMG with a zero drop threshold and SOR smoothing, block Jacobi and
additive Schwarz with a Cholesky of each subdomain (nested dissection; also the other
orderings of PETSc's own factorization), additive Schwarz with incomplete Cholesky
(levels 0 and 2), and the case's ``fom.petsc_options``; ``--sets`` runs only the named
ones. "first solve" is the first linear solve, where the subdomain factorization is made.
"""
from __future__ import annotations

import argparse
import json
import platform
import time
from dataclasses import asdict, replace

import numpy as np
from mpi4py import MPI

from rom.fom.mesh import FEMesh
from rom.fom.run import load_fom_case, make_solver
from rom.fom.solver import ConvergenceError
from rom.fom.setup import material_from_config
from rom.io.mesh import read_mesh
from rom.parallel import rank0_print
from rom.study.run import expand_queries, temperature_history

CHOLESKY = {"sub_pc_type": "cholesky", "sub_pc_factor_mat_ordering_type": "nd"}
ASM = {"pc_type": "asm", "pc_asm_type": "basic", "pc_asm_overlap": 1}
SETS = {
    "gamg (defaults)": {},
    "gamg threshold 0, SOR": {"pc_gamg_threshold": 0.0, "mg_levels_pc_type": "sor"},
    "block Jacobi + Cholesky": {"pc_type": "bjacobi", **CHOLESKY},
    "ASM(1) + Cholesky": {"pc_type": "asm", "pc_asm_type": "basic", "pc_asm_overlap": 1,
                          **CHOLESKY},
    "ASM(1) + Cholesky qmd": {**ASM, **CHOLESKY, "sub_pc_factor_mat_ordering_type": "qmd"},
    "ASM(1) + Cholesky rcm": {**ASM, **CHOLESKY, "sub_pc_factor_mat_ordering_type": "rcm"},
    "ASM(1) + ICC(0)": {**ASM, "sub_pc_type": "icc"},
    "ASM(1) + ICC(2)": {**ASM, "sub_pc_type": "icc", "sub_pc_factor_levels": 2},
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("case")
    ap.add_argument("--query", default="hotter")
    ap.add_argument("--steps", type=int, default=8)
    ap.add_argument("--sets", nargs="+", default=None, help="names of the option sets to run")
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    comm = MPI.COMM_WORLD
    fc = load_fom_case(args.case)
    mesh = FEMesh.from_meshio(read_mesh(fc.case.mesh), source=str(fc.case.mesh))
    law = material_from_config(fc.material)
    grid = fc.loading.times
    times = np.linspace(grid.start, grid.stop, grid.steps + 1)[:args.steps + 1]
    q = {q.name: q for q in expand_queries(fc.case.study)}[args.query]
    T = temperature_history(fc, q.temperature, mesh, times, comm)
    sets = {**SETS, "case file": dict(fc.fom.petsc_options)}
    if args.sets:
        unknown = sorted(set(args.sets) - set(sets))
        if unknown:
            raise SystemExit(f"unknown --sets {unknown}; known: {sorted(sets)}")
        sets = {k: v for k, v in sets.items() if k in args.sets}
    rows, u_ref = [], None
    for k, (name, opts) in enumerate(sets.items()):  # loop over option sets
        # the case's solver (loads, Newton, partition) with these options only
        fom = replace(fc.fom, petsc_prefix=f"bench{k}_",
                      petsc_options={"ksp_max_it": 400, **opts})
        solver = make_solver(replace(fc, fom=fom), mesh, law, q.scale, comm)
        comm.Barrier()
        t0 = time.perf_counter()
        st = solver.initial_state(float(times[0]))
        try:
            for i in range(1, times.size):  # loop over time steps
                st = solver.step(st, T[i], float(times[i]), temperature_old=T[i - 1])
        except ConvergenceError as exc:      # the same on every rank
            rows.append({"options": name, "petsc_options": opts, "failed": str(exc),
                         "seconds": comm.allreduce(time.perf_counter() - t0, op=MPI.MAX)})
            solver.destroy()
            rank0_print(comm, f"{name:26s} failed after {rows[-1]['seconds']:.2f} s: {exc}")
            continue
        wall = comm.allreduce(time.perf_counter() - t0, op=MPI.MAX)
        u_ref = st.u if u_ref is None else u_ref
        kits = [r["ksp_iterations"] for r in solver.log]
        rows.append({"options": name, "petsc_options": opts, "seconds": wall,
                     "newton_iterations": len(kits), "ksp_iterations": int(sum(kits)),
                     "ksp_per_newton": float(np.mean(kits)), "cuts": list(solver.cuts),
                     "first_solve_seconds": comm.allreduce(
                         solver.log[0]["solve_s"] if solver.log else 0.0, op=MPI.MAX),
                     "u_diff": float(np.abs(st.u - u_ref).max() / np.abs(u_ref).max())})
        solver.destroy()
        r = rows[-1]
        rank0_print(comm, f"{name:26s} {r['seconds']:8.2f} s  first solve "
                    f"{r['first_solve_seconds']:6.2f} s  Newton {r['newton_iterations']:3d}"
                    f"  KSP {r['ksp_iterations']:5d} ({r['ksp_per_newton']:.0f}/Newton)"
                    f"  cuts {len(r['cuts'])}  |u - u_first| {r['u_diff']:.1e}")
    out = args.out
    if comm.rank == 0 and out:
        with open(out, "w") as f:
            json.dump({"case": args.case, "query": args.query, "steps": args.steps,
                       "n_dofs": 3 * mesh.n_nodes, "ranks": comm.size,
                       "machine": platform.node(), "newton": asdict(fc.fom.newton),
                       "results": rows}, f, indent=1)


if __name__ == "__main__":
    main()

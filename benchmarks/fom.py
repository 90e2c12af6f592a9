"""Full-order solver benchmarks (run by hand; prints tables and writes out/bench_fom_np<P>.json).

1. Assembly throughput of the linear-elastic stiffness on the same tet4 mesh:
   rom.fom kernels + scipy COO assembly vs scikit-fem (``pip install scikit-fem``), and
   the largest entry of the difference of the two matrices relative to the largest entry
   (``same_matrix_rel_diff``: round-off is ~1e-15). Medians of 3 runs.
2. Newton iterations of a tet10 Norton creep problem (an elastic load step, then a long
   creep step) vs dofs, at the communicator's size: per Newton iteration the material +
   element matrices, the PETSc assembly, the KSP solve (with preconditioner setups), KSP
   iterations; the time per CG iteration and the peak memory (RSS) per rank.

    .venv/bin/python benchmarks/fom.py [--sizes 16 32] [--newton-sizes 6 13] [--skip-skfem]
    .venv/bin/mpiexec -n 2 .venv/bin/python benchmarks/fom.py --newton-only
"""
from __future__ import annotations

import argparse
import itertools
import json
import resource
import time
from pathlib import Path

import numpy as np
from mpi4py import MPI

from rom.fom.discretization import ElementSet
from rom.fom.mesh import FEMesh
from rom.fom.serial import assemble_matrix
from rom.materials import Norton, ThermoElastic
from rom.meshes import solid_block
from rom.parallel import rank0_print, world


def _median(fn, repeat=3):
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return float(np.median(times)), out


def assembly(n: int, skip_skfem: bool) -> dict:
    mio = solid_block((n, n, n), cell="tetra")
    mesh = FEMesh.from_meshio(mio)
    E, nu = 200e9, 0.3
    law = ThermoElastic(E, nu)

    def ours():
        es = ElementSet(mesh)
        D = law.stiffness(np.full(es.n_qp, law.T_ref))
        Ke = es.tangents(D)
        return assemble_matrix([b.dofs for b in es.blocks], Ke, 3 * mesh.n_nodes)

    t_ours, K = _median(ours)
    row = {"n_elements": mesh.n_elements, "dofs": 3 * mesh.n_nodes, "rom_s": t_ours,
           "rom_elements_per_s": mesh.n_elements / t_ours}
    if not skip_skfem:
        import skfem
        from skfem.models.elasticity import lame_parameters, linear_elasticity
        m = skfem.MeshTet(np.ascontiguousarray(mesh.points.T), np.ascontiguousarray(
            mesh.blocks[0].cells.T))
        lam, mu = lame_parameters(E, nu)

        def theirs():
            basis = skfem.Basis(m, skfem.ElementVector(skfem.ElementTetP1()))
            return linear_elasticity(lam, mu).assemble(basis)

        t_sk, Ks = _median(theirs)
        row.update(skfem_s=t_sk, skfem_elements_per_s=mesh.n_elements / t_sk,
                   speedup=t_sk / t_ours)
        # same matrix? skfem orders dofs component-major per node too (interleaved)
        row["same_matrix_rel_diff"] = float(abs(Ks - K).max() / abs(K).max())
    return row


def newton(n: int, comm) -> dict:
    from rom.fom.loads import Dirichlet, Loads, Pressure
    from rom.fom.solver import MechanicalSolver
    mesh = FEMesh.from_meshio(solid_block((2 * n, n, n), cell="tetra10", lengths=(2.0, 1.0, 1.0)))
    law = Norton(200e9, 0.3, K=500e6, n=5.0)
    loads = Loads([Dirichlet("xmin")], [Pressure("xmax", -50e6)])
    comm.barrier()
    t0 = time.perf_counter()
    solver = MechanicalSolver(mesh, law, loads, comm=comm)
    t_setup = comm.allreduce(time.perf_counter() - t0, op=MPI.MAX)
    T = np.full(mesh.n_nodes, 293.15)
    t0, c0 = time.perf_counter(), time.process_time()
    s1 = solver.step(solver.initial_state(), T, 1e-9)          # elastic load step
    t1 = time.perf_counter()
    s2 = solver.step(s1, T, 100.0)                             # creep step (strongly nonlinear)
    t2, c2 = time.perf_counter(), time.process_time()
    log = solver.log
    its = len(log)

    def tmax(key):  # per Newton iteration: slowest rank
        mine = np.array([r[key] for r in log], float)
        out = np.empty_like(mine)
        comm.Allreduce(mine, out, op=MPI.MAX)
        return out

    mat, asm, sol, pcs = tmax("material_s"), tmax("assembly_s"), tmax("solve_s"), tmax("pc_setup_s")
    kits = np.array([r["ksp_iterations"] for r in log])
    per_it = mat + asm + sol
    cpu_sol, cpu_pcs = tmax("solve_cpu_s"), tmax("pc_setup_cpu_s")
    cpu_per_it = comm.allreduce(c2 - c0, op=MPI.MAX) / max(its, 1)   # incl. residual evaluations
    solver.destroy()
    rss = comm.allreduce(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0, op=MPI.MAX)
    return {"dofs": 3 * mesh.n_nodes, "ranks": comm.size, "setup_s": t_setup,
            "newton_iterations": its, "newton_iterations_per_step": [len(s1.newton) - 1,
                                                                     len(s2.newton) - 1],
            "step_s": [t1 - t0, t2 - t1],
            "ksp_iterations": kits.tolist(), "ksp_rtol": [r["ksp_rtol"] for r in log],
            "pc_setups": int(sum(r["pc_setup"] for r in log)),
            "s_per_iteration": float(np.median(per_it)),
            "material_s_per_it": float(np.median(mat)),
            "assembly_s_per_it": float(np.median(asm)),
            "solve_s_per_it": float(np.median(sol)),
            "pc_setup_s_total": float(pcs.sum()),
            "s_per_cg_iteration": float(np.median((sol - pcs) / np.maximum(kits, 1))),
            "cpu_s_per_iteration": cpu_per_it,
            "cpu_s_per_cg_iteration": float(np.median((cpu_sol - cpu_pcs) / np.maximum(kits, 1))),
            "peak_rss_MiB": rss}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[16, 32])
    ap.add_argument("--newton-sizes", type=int, nargs="+", default=[6, 13])
    ap.add_argument("--skip-skfem", action="store_true")
    ap.add_argument("--newton-only", action="store_true")
    args = ap.parse_args()
    comm = world()
    result = {"assembly": [], "newton": []}
    if not args.newton_only and comm.rank == 0:
        print(f"{'elements':>9} {'dofs':>8} {'rom s':>7} {'rom el/s':>10} {'skfem el/s':>11} "
              f"{'speedup':>8} {'same_matrix_rel_diff':>21}")
        for n in args.sizes:
            r = assembly(n, args.skip_skfem)
            result["assembly"].append(r)
            print(f"{r['n_elements']:9d} {r['dofs']:8d} {r['rom_s']:7.3f} "
                  f"{r['rom_elements_per_s']:10.3g} "
                  f"{r.get('skfem_elements_per_s', float('nan')):11.3g} "
                  f"{r.get('speedup', float('nan')):8.2f} "
                  f"{r.get('same_matrix_rel_diff', float('nan')):21.2e}", flush=True)
    rank0_print(comm, f"\nNewton (tet10, Norton: elastic step + creep step), {comm.size} rank(s); "
                      "medians per Newton iteration, slowest rank\n"
                      "(wall time; 'cpu' columns: process CPU time, robust on a shared machine)\n"
                      f"{'dofs':>8} {'setup':>7} {'its':>4} {'s/it':>7} {'material':>8} "
                      f"{'assembly':>8} {'solve':>7} {'PCsetups':>8} {'ms/CG it':>8} "
                      f"{'cpu s/it':>8} {'cpu ms/CG':>9} {'RSS MiB':>8}  KSP its per Newton it")
    for n in args.newton_sizes:
        r = newton(n, comm)
        result["newton"].append(r)
        rank0_print(comm, f"{r['dofs']:8d} {r['setup_s']:7.2f} {r['newton_iterations']:4d} "
                          f"{r['s_per_iteration']:7.3f} {r['material_s_per_it']:8.3f} "
                          f"{r['assembly_s_per_it']:8.3f} {r['solve_s_per_it']:7.3f} "
                          f"{r['pc_setups']:8d} {1e3 * r['s_per_cg_iteration']:8.2f} "
                          f"{r['cpu_s_per_iteration']:8.3f} "
                          f"{1e3 * r['cpu_s_per_cg_iteration']:9.2f} "
                          f"{r['peak_rss_MiB']:8.0f}  {r['ksp_iterations']}")
    rows = result["newton"]
    for a, b in itertools.pairwise(rows):
        e = np.log(b["s_per_iteration"] / a["s_per_iteration"]) / np.log(b["dofs"] / a["dofs"])
        ecg = np.log(b["s_per_cg_iteration"] / a["s_per_cg_iteration"]) / np.log(b["dofs"] / a["dofs"])
        c = np.log(b["cpu_s_per_iteration"] / a["cpu_s_per_iteration"]) / np.log(b["dofs"] / a["dofs"])
        ccg = np.log(b["cpu_s_per_cg_iteration"] / a["cpu_s_per_cg_iteration"]) / \
            np.log(b["dofs"] / a["dofs"])
        rank0_print(comm, f"  {a['dofs']} -> {b['dofs']} dofs: per Newton iteration wall ~ "
                          f"dofs^{e:.2f}, cpu ~ dofs^{c:.2f}; per CG iteration wall ~ "
                          f"dofs^{ecg:.2f}, cpu ~ dofs^{ccg:.2f}")
    if comm.rank == 0:
        out = Path("out")
        out.mkdir(exist_ok=True)
        (out / f"bench_fom_np{comm.size}.json").write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()

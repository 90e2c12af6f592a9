"""Full-order solver benchmarks (run by hand; prints tables and writes out/bench_fom.json).

1. Assembly throughput of the linear-elastic stiffness on the same tet4 mesh:
   rom.fom kernels + scipy COO assembly vs scikit-fem (``pip install scikit-fem``).
2. Time of one Newton iteration (material + assembly + KSP solve, viscoplastic step)
   vs dofs, at the communicator's size; peak memory (RSS) per rank.

    .venv/bin/python benchmarks/fom.py [--sizes 6 10 16] [--skip-skfem]
    .venv/bin/mpiexec -n 2 .venv/bin/python benchmarks/fom.py --newton-only
"""
from __future__ import annotations

import argparse
import json
import resource
import time
from pathlib import Path

import numpy as np

from rom.fom.discretization import ElementSet
from rom.fom.mesh import FEMesh
from rom.fom.serial import assemble_matrix
from rom.materials import Norton, ThermoElastic
from rom.meshes import solid_block
from rom.parallel import rank0_print, world


def _best(fn, repeat=3):
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return min(times), out


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

    t_ours, K = _best(ours)
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

        t_sk, Ks = _best(theirs)
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
    t0 = time.perf_counter()
    solver = MechanicalSolver(mesh, law, loads, comm=comm)
    t_setup = time.perf_counter() - t0
    T = np.full(mesh.n_nodes, 293.15)
    s1 = solver.step(solver.initial_state(), T, 0.0 + 1e-9)
    for k in solver.timings:
        solver.timings[k] = 0.0
    t0 = time.perf_counter()
    s2 = solver.step(s1, T, 100.0)
    t_step = time.perf_counter() - t0
    its = len(s2.newton) - 1
    tm = {k: comm.allreduce(v, op=__import__("mpi4py").MPI.MAX) for k, v in solver.timings.items()}
    solver.destroy()
    rss = comm.allreduce(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0,
                         op=__import__("mpi4py").MPI.MAX)
    return {"dofs": 3 * mesh.n_nodes, "ranks": comm.size, "setup_s": t_setup,
            "newton_iterations": its, "s_per_iteration": t_step / max(its, 1),
            "assembly_s_per_it": tm["assembly"] / max(its, 1),
            "material_s_per_it": tm["material"] / max(its + 1, 1),
            "solve_s_per_it": tm["solve"] / max(its, 1), "peak_rss_MiB": rss}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[8, 16, 24])
    ap.add_argument("--newton-sizes", type=int, nargs="+", default=[4, 6, 9])
    ap.add_argument("--skip-skfem", action="store_true")
    ap.add_argument("--newton-only", action="store_true")
    args = ap.parse_args()
    comm = world()
    result = {"assembly": [], "newton": []}
    if not args.newton_only and comm.rank == 0:
        print(f"{'elements':>9} {'dofs':>8} {'rom el/s':>10} {'skfem el/s':>11} {'speedup':>8}")
        for n in args.sizes:
            r = assembly(n, args.skip_skfem)
            result["assembly"].append(r)
            print(f"{r['n_elements']:9d} {r['dofs']:8d} {r['rom_elements_per_s']:10.3g} "
                  f"{r.get('skfem_elements_per_s', float('nan')):11.3g} "
                  f"{r.get('speedup', float('nan')):8.2f}", flush=True)
    rank0_print(comm, f"\nNewton (tet10, Norton creep step), {comm.size} rank(s)\n"
                      f"{'dofs':>8} {'its':>4} {'s/it':>8} {'assembly':>9} {'material':>9} "
                      f"{'solve':>8} {'RSS MiB':>8}")
    for n in args.newton_sizes:
        r = newton(n, comm)
        result["newton"].append(r)
        rank0_print(comm, f"{r['dofs']:8d} {r['newton_iterations']:4d} {r['s_per_iteration']:8.3f} "
                          f"{r['assembly_s_per_it']:9.3f} {r['material_s_per_it']:9.3f} "
                          f"{r['solve_s_per_it']:8.3f} {r['peak_rss_MiB']:8.0f}")
    if comm.rank == 0:
        out = Path("out")
        out.mkdir(exist_ok=True)
        (out / f"bench_fom_np{comm.size}.json").write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()

"""python -m rom.fom: case sections, snapshot store, heat solver, command line."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import h5py
import meshio
import numpy as np
import pytest
from mpi4py import MPI

pytest.importorskip("petsc4py")

from rom.fom.heat import solve_heat
from rom.fom.mesh import FEMesh
import rom.fom.run
from rom.fom.run import load_fom_case, run_case
from rom.fom.setup import loads_from_config, material_from_config, temperature_function
from rom.fom.solver import MechanicalSolver, NewtonOptions
from rom.io.snapshots import SnapshotStore
from rom.materials import Table
from rom.meshes import solid_block

ROOT = Path(__file__).resolve().parents[1]
CASE = """
name: bar
mesh: bar.inp
snapshots: {{store: out/bar.snapshots.h5}}
output: {{directory: out, plot: false, write_modes: false}}
material:
  law: norton
  E: {{temperatures: [300, 1200], values: [2.0e11, 1.4e11]}}
  nu: {{values: [0.3]}}
  alpha: {{temperatures: [300, 1200], values: [1.2e-5, 1.6e-5]}}
  T_ref: 300
  K: {{temperatures: [300, 1200], values: [9.0e8, 3.0e8]}}
  n: {{values: [5]}}
  density: 8000
loading:
  dirichlet: [{{group: {clamp}}}]
  pressure: [{{group: xmax, value: -1.5e8}}]
  centrifugal: {{omega: 1500.0, axis_point: [-0.1, 0, 0], axis_direction: [0, 1, 0]}}
  amplitude: {{temperatures: [0, 1], values: [0, 1]}}
  times: {{start: 0, stop: 50, steps: 3}}
fom:
  petsc_options: {{ksp_rtol: 1e-13}}
  newton: {{rtol: 1e-11}}
  loadings:
    - {{name: cold, temperature: {{uniform: 400}}}}
    - {{name: hot, temperature: {{formula: "500 + 8000 * x"}}, scale: 0.8}}
"""


def _write_case(path: Path, clamp: str = "xmin") -> Path:
    mesh = solid_block((3, 1, 1), cell="tetra10", lengths=(0.04, 0.01, 0.01))
    meshio.write(path / "bar.inp", mesh)
    (path / "case.yaml").write_text(CASE.format(clamp=clamp))
    return path / "case.yaml"


@pytest.mark.mpi
def test_run_case_writes_store_like_serial_solver(comm, shared_tmp_path, monkeypatch):
    case_file = _write_case(shared_tmp_path) if comm.rank == 0 else shared_tmp_path / "case.yaml"
    comm.barrier()
    fc = load_fom_case(case_file)
    live, peak, made = [0], [0], []          # one solver (matrix, preconditioner) at a time
    make = rom.fom.run.make_solver

    def counted(*args, **kwargs):
        s = make(*args, **kwargs)
        destroy = s.destroy
        made.append(s)
        live[0] += 1
        peak[0] = max(peak[0], live[0])

        def counted_destroy():
            live[0] -= 1
            destroy()
        s.destroy = counted_destroy
        return s

    monkeypatch.setattr(rom.fom.run, "make_solver", counted)
    store_path = run_case(fc, comm, progress=False)
    assert (len(made), peak[0], live[0]) == (2, 1, 0)
    # serial reference of the last step of loading "hot"
    mesh = FEMesh.from_meshio(meshio.read(shared_tmp_path / "bar.inp"))
    lc = fc.fom.loadings[1]
    ref = None
    if comm.rank == 0:  # serial reference, computed once and broadcast
        solver = MechanicalSolver(mesh, material_from_config(fc.material),
                                  loads_from_config(fc.loading, fc.material.density, lc.scale),
                                  comm=MPI.COMM_SELF, petsc_options={"ksp_rtol": 1e-13},
                                  newton=NewtonOptions(rtol=1e-11))
        ref = solver.solve(np.linspace(0, 50, 4), temperature_function(lc.temperature, mesh))
        solver.destroy()
    ref = comm.bcast(ref, root=0)
    with SnapshotStore.open(store_path, comm=MPI.COMM_SELF) as store:
        assert store.n_snapshots == 6
        assert sorted(store.fields) == ["displacement", "p", "stress", "temperature",
                                        "viscoplastic_strain"]          # no strain by default
        assert {f.dtype for f in store.fields.values()} == {"float64"}
        assert [ld.name for ld in store.loadings] == ["cold", "hot"]
        u = store.read("displacement", loading="hot", rows=(0, 3 * mesh.n_nodes))
        p = store.read("p", loading="hot", rows=(0, store.field("p").n_rows))
    assert np.abs(u[:, -1] - ref.u.ravel()).max() <= 1e-8 * np.abs(ref.u).max()
    assert np.allclose(p[:, -1], ref.internal[:, 6], rtol=1e-6, atol=1e-9)
    assert p[:, -1].max() > 1e-4
    if comm.rank == 0:
        assert (shared_tmp_path / "out" / "bar.hot.xdmf").is_file()
    comm.barrier()


def test_cli_help_and_missing_group(tmp_path):
    py = sys.executable
    out = subprocess.run([py, "-m", "rom.fom", "--help"], capture_output=True, text=True, check=False,
                         cwd=ROOT, timeout=120)
    assert out.returncode == 0 and "case" in out.stdout
    case = _write_case(tmp_path, clamp="root")
    out = subprocess.run([py, "-m", "rom.fom", str(case), "--quiet", "-ksp_type", "cg"],
                         capture_output=True, text=True, cwd=ROOT, timeout=300, check=False)
    assert out.returncode == 2, out.stderr
    assert "dirichlet group 'root' not found" in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1


@pytest.mark.mpi
def test_heat_slab_with_convection(comm):
    """1D slab: T(0) = T0, convection h (T - T_ext) at x = L: linear profile, closed form."""
    L, k, h, T0, Text = 0.1, 20.0, 500.0, 1000.0, 300.0
    mesh = FEMesh.from_meshio(solid_block((4, 2, 2), cell="tetra10", lengths=(L, 0.02, 0.02),
                                          distort=0.2))
    T = solve_heat(mesh, Table([0.0], [k]), fixed=[("xmin", T0)],
                   convection=[("xmax", h, Text)], comm=comm)
    exact = T0 + (Text - T0) * h * mesh.points[:, 0] / (k + h * L)
    assert np.abs(T - exact).max() < 1e-8 * T0
    # k(T) linear in T: Kirchhoff transform gives the exact nodal profile for fixed ends
    kt = Table([300.0, 1300.0], [10.0, 30.0])
    T2 = solve_heat(mesh, kt, fixed=[("xmin", 1200.0), ("xmax", 400.0)], comm=comm)
    a, b = 0.02, 10.0 - 0.02 * 300.0          # k = a T + b

    def kirchhoff(t):
        return 0.5 * a * t**2 + b * t

    x = mesh.points[:, 0] / L
    phi = kirchhoff(1200.0) + (kirchhoff(400.0) - kirchhoff(1200.0)) * x
    exact2 = (-b + np.sqrt(b**2 + 2 * a * phi)) / a
    assert np.abs(T2 - exact2).max() < 2e-3 * 800.0


HEAT_CASE = """
name: slab
mesh: slab.inp
snapshots: {store: out/slab.snapshots.h5}
output: {directory: out, plot: false, write_modes: false}
material:
  law: elastic
  E: {temperatures: [300, 1200], values: [2.0e11, 1.4e11]}
  nu: {values: [0.3]}
  alpha: {temperatures: [300, 1200], values: [1.2e-5, 1.6e-5]}
  T_ref: 300
  conductivity: {values: [20.0]}
loading:
  dirichlet: [{group: xmin, components: [x]}, {group: ymin, components: [y]},
              {group: zmin, components: [z]}]
  times: {start: 0, stop: 1, steps: 1}
fom:
  petsc_options: {ksp_rtol: 1e-13}
  newton: {rtol: 1e-11}
  write_xdmf: false
  heat: {fixed: [{group: xmin, value: 1000}], convection: [{group: xmax, h: 500, T_ext: 300}]}
  loadings:
    - {name: heat, temperature: {heat: true}}
    - {name: formula, temperature: {formula: "1000 - 700 * 500 * x / (20 + 500 * 0.1)"}}
"""


@pytest.mark.mpi
def test_run_case_heat_temperature_matches_closed_form(comm, shared_tmp_path):
    """``temperature: {heat: true}``: slab, T(0) = T0, convection at x = L; the stored
    temperature is the closed form T0 + (T_ext - T0) h x / (k + h L), and the mechanics
    driven by it equal a run with that closed form given as a formula."""
    if comm.rank == 0:
        mesh = solid_block((3, 1, 1), cell="tetra10", lengths=(0.1, 0.02, 0.02), distort=0.2)
        meshio.write(shared_tmp_path / "slab.inp", mesh)
        (shared_tmp_path / "case.yaml").write_text(HEAT_CASE)
    comm.barrier()
    store_path = run_case(load_fom_case(shared_tmp_path / "case.yaml"), comm, progress=False)
    x = meshio.read(shared_tmp_path / "slab.inp").points[:, 0]
    exact = 1000.0 + (300.0 - 1000.0) * 500.0 * x / (20.0 + 500.0 * 0.1)
    with SnapshotStore.open(store_path, comm=MPI.COMM_SELF) as store:
        n = 3 * len(x)
        T = store.read("temperature", rows=(0, len(x)))
        u = {name: store.read("displacement", loading=name, rows=(0, n))[:, -1]
             for name in ("heat", "formula")}
    assert np.abs(T - exact[:, None]).max() < 1e-9 * 1000.0
    assert np.abs(u["heat"] - u["formula"]).max() <= 1e-8 * np.abs(u["formula"]).max()
    assert np.abs(u["formula"]).max() > 1e-5                  # the expansion is real
    comm.barrier()


def _mpiexec() -> Path:
    return Path(sys.executable).with_name("mpiexec")


@pytest.mark.skipif(not _mpiexec().exists(), reason="no mpiexec next to the interpreter")
def test_cli_under_mpiexec_writes_the_serial_store(tmp_path):
    """``mpiexec -n 2 python -m rom.fom case.yaml`` writes the same store as a serial run."""
    case = _write_case(tmp_path)
    text = case.read_text().replace("steps: 3", "steps: 2")
    case.write_text(text)
    serial_case = tmp_path / "serial.yaml"
    serial_case.write_text(text.replace("out/bar.snapshots.h5", "out/serial.h5")
                           .replace("directory: out", "directory: out_serial"))
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("PMI_", "PMIX_", "MPIR_", "HYDRA_", "OMPI_"))}
    out = subprocess.run([str(_mpiexec()), "-n", "2", sys.executable, "-m", "rom.fom",
                          str(case), "--quiet"], capture_output=True, text=True, cwd=ROOT,
                         timeout=240, check=False, env=env)
    assert out.returncode == 0, out.stderr
    assert "rom.fom: wrote" in out.stdout
    run_case(load_fom_case(serial_case), MPI.COMM_SELF, progress=False)
    with SnapshotStore.open(tmp_path / "out/bar.snapshots.h5", comm=MPI.COMM_SELF) as par, \
            SnapshotStore.open(tmp_path / "out/serial.h5", comm=MPI.COMM_SELF) as ser:
        assert par.n_snapshots == ser.n_snapshots == 4
        assert sorted(par.fields) == sorted(ser.fields)
        assert np.array_equal(par.snapshot_table(), ser.snapshot_table())
        for name in ser.fields:
            rows = (0, ser.field(name).n_rows)
            a, b = par.read(name, rows=rows), ser.read(name, rows=rows)
            scale = max(np.abs(b).max(), 1e-300)
            assert np.abs(a - b).max() <= 1e-8 * scale, name
    assert (tmp_path / "out" / "bar.hot.xdmf").is_file()


def test_solver_kept_for_loadings_of_the_same_scale(tmp_path, monkeypatch):
    """Loadings of the same load scale share one full-order solver (its preconditioner is
    reused); each loading still starts from the virgin state: the second loading's fields
    equal those of a run of that loading alone, to the Newton tolerance."""
    case = _write_case(tmp_path)
    text = case.read_text().replace(', scale: 0.8}', '}')
    case.write_text(text)
    made = []
    make = rom.fom.run.make_solver

    def counted(*args, **kwargs):
        made.append(1)
        return make(*args, **kwargs)

    monkeypatch.setattr(rom.fom.run, "make_solver", counted)
    both = run_case(load_fom_case(case), MPI.COMM_SELF, progress=False)
    assert len(made) == 1
    alone_dir = tmp_path / "alone"
    alone_dir.mkdir()
    alone = _write_case(alone_dir)
    alone.write_text(text.replace(
        '    - {name: cold, temperature: {uniform: 400}}\n', ""))
    one = run_case(load_fom_case(alone), MPI.COMM_SELF, progress=False)
    with SnapshotStore.open(both, comm=MPI.COMM_SELF) as a, \
            SnapshotStore.open(one, comm=MPI.COMM_SELF) as b:
        assert [ld.name for ld in b.loadings] == ["hot"]
        for name in ("displacement", "stress", "p"):
            x, y = a.read_global(name, loading="hot"), b.read_global(name)
            assert np.abs(x - y).max() <= 1e-8 * np.abs(y).max(), name


def test_resume_adds_only_the_missing_loadings(tmp_path):
    """--resume: a store holding "cold" gets "hot" appended, identical to a fresh run's;
    complete stores are left alone; other parameters or a cut-short loading are errors."""
    from rom.parallel import UserError
    case = _write_case(tmp_path)
    full_text = case.read_text()
    case.write_text(full_text.replace(
        '    - {name: hot, temperature: {formula: "500 + 8000 * x"}, scale: 0.8}\n', ""))
    store_path = run_case(load_fom_case(case), MPI.COMM_SELF, progress=False)
    with SnapshotStore.open(store_path, comm=MPI.COMM_SELF) as s:
        assert [ld.name for ld in s.loadings] == ["cold"]
        cold = s.read_global("displacement")
    case.write_text(full_text)
    fc = load_fom_case(case)
    with pytest.raises(UserError, match="exclude each other"):
        run_case(fc, MPI.COMM_SELF, overwrite=True, resume=True, progress=False)
    with pytest.raises(UserError, match="already exists: run with --resume"):
        run_case(fc, MPI.COMM_SELF, progress=False)           # neither flag: refused
    run_case(fc, MPI.COMM_SELF, resume=True, progress=False)
    ref = tmp_path / "ref"
    ref.mkdir()
    (ref / "case.yaml").write_text(full_text.replace("mesh: bar.inp", f"mesh: {tmp_path}/bar.inp"))
    ref_path = run_case(load_fom_case(ref / "case.yaml"), MPI.COMM_SELF, progress=False)
    with SnapshotStore.open(store_path, comm=MPI.COMM_SELF) as s, \
            SnapshotStore.open(ref_path, comm=MPI.COMM_SELF) as r:
        assert [ld.name for ld in s.loadings] == ["cold", "hot"] and s.n_snapshots == 6
        assert np.array_equal(s.read_global("displacement", loading="cold"), cold)
        for name in r.fields:
            a, b = s.read_global(name, loading="hot"), r.read_global(name, loading="hot")
            assert np.abs(a - b).max() <= 1e-10 * max(np.abs(b).max(), 1e-300), name
        assert s.loadings[1].parameters == r.loadings[1].parameters
    mtime = store_path.stat().st_mtime_ns
    run_case(fc, MPI.COMM_SELF, resume=True, progress=False)        # nothing to do
    assert store_path.stat().st_mtime_ns == mtime
    case.write_text(full_text.replace("uniform: 400", "uniform: 410"))
    with pytest.raises(UserError, match="'cold' was stored with other parameters"):
        run_case(load_fom_case(case), MPI.COMM_SELF, resume=True, progress=False)
    case.write_text(full_text.replace("steps: 3", "steps: 4"))
    with pytest.raises(UserError, match="'cold' has 3 of 4 time steps"):
        run_case(load_fom_case(case), MPI.COMM_SELF, resume=True, progress=False)


def _variant(tmp_path: Path, name: str, text: str, snapshots: str, drop_hot: bool = False
             ) -> Path:
    """The bar case in ``tmp_path / name`` with ``snapshots: {store: ..., <snapshots>}``
    (the mesh of ``tmp_path``), optionally without the loading "hot"."""
    d = tmp_path / name
    d.mkdir(exist_ok=True)
    text = text.replace("mesh: bar.inp", f"mesh: {tmp_path}/bar.inp").replace(
        "snapshots: {store: out/bar.snapshots.h5}",
        f"snapshots: {{store: out/bar.snapshots.h5{', ' if snapshots else ''}{snapshots}}}")
    if drop_hot:
        text = text.replace(
            '    - {name: hot, temperature: {formula: "500 + 8000 * x"}, scale: 0.8}\n', "")
    (d / "case.yaml").write_text(text)
    return d / "case.yaml"


def test_single_precision_store_and_resume(tmp_path):
    """snapshots.precision: single: float32 quadrature datasets, float64 displacement and
    temperature; the values are the double run's rounded to float32. --resume at another
    precision, or asking for a field the store lacks, is an error that says what to do."""
    from rom.parallel import UserError
    text = _write_case(tmp_path).read_text()
    double = run_case(load_fom_case(tmp_path / "case.yaml"), MPI.COMM_SELF, progress=False)
    case = _variant(tmp_path, "single", text, "precision: single", drop_hot=True)
    path = run_case(load_fom_case(case), MPI.COMM_SELF, progress=False)
    quadrature = ("stress", "p", "viscoplastic_strain")
    with h5py.File(path, "r") as f:
        assert sorted(f["fields"]) == ["displacement", "p", "stress", "temperature",
                                       "viscoplastic_strain"]
        for name in quadrature:
            assert f[f"fields/{name}/values"].dtype == np.float32, name
        for name in ("displacement", "temperature"):
            assert f[f"fields/{name}/values"].dtype == np.float64, name
    with SnapshotStore.open(path, comm=MPI.COMM_SELF) as s, \
            SnapshotStore.open(double, comm=MPI.COMM_SELF) as d:
        for name in d.fields:            # same solve, same steps: the rounding is the only change
            a, b = s.read_global(name), d.read_global(name, loading="cold")
            assert a.dtype == np.float64, name
            # two runs of the solver agree to its Newton tolerance, not bit for bit (the
            # whole serial suite, a clean clone: the displacement differed in its last digits)
            tol = 1e-8 * np.abs(b).max()
            if name in quadrature:         # stored as float32: exactly float32 values,
                assert np.array_equal(a, a.astype(np.float32)), name      # b's rounding
                assert np.all(np.abs(a - b) <= 2.0 ** -24 * np.abs(b) + tol), name
            else:
                assert np.abs(a - b).max() <= tol, name
    for snapshots, words in (
            ("precision: double", r"field 'p' is stored in float32 \(snapshots.precision: "
                                  r"single\) but .*single/case.yaml has snapshots.precision: "
                                  r"double; --resume keeps one precision per store"),
            ("precision: single, strain: true", r"has no field 'strain', which .* asks rom.fom "
                                                r"to store \(snapshots.strain: true\); --resume "
                                                r"cannot add a field")):
        _variant(tmp_path, "single", text, snapshots)
        with pytest.raises(UserError, match=words):
            run_case(load_fom_case(case), MPI.COMM_SELF, resume=True, progress=False)
    _variant(tmp_path, "single", text, "precision: single")
    run_case(load_fom_case(case), MPI.COMM_SELF, resume=True, progress=False)
    with SnapshotStore.open(path, comm=MPI.COMM_SELF) as s, \
            SnapshotStore.open(double, comm=MPI.COMM_SELF) as d:
        assert [ld.name for ld in s.loadings] == ["cold", "hot"]
        for name in quadrature:          # "hot" on a fresh solver here: Newton-level differences
            a, b = s.read_global(name, loading="hot"), d.read_global(name, loading="hot")
            assert np.all(np.abs(a - b) <= 2.0 ** -24 * np.abs(b) + 1e-9 * np.abs(b).max()), name
    _variant(tmp_path, "single", text, "")    # complete store, nothing to run: still checked
    with pytest.raises(UserError, match="field 'p' is stored in float32"):
        run_case(load_fom_case(case), MPI.COMM_SELF, resume=True, progress=False)


def test_store_with_strain_resumes(tmp_path):
    """A store holding ``strain`` (written before it was dropped, or with snapshots.strain:
    true) resumes with the default case: the new loadings get strain too."""
    text = _write_case(tmp_path).read_text()
    case = _variant(tmp_path, "old", text, "strain: true", drop_hot=True)
    path = run_case(load_fom_case(case), MPI.COMM_SELF, progress=False)
    with SnapshotStore.open(path, comm=MPI.COMM_SELF) as s:
        assert "strain" in s.fields and s.fields["strain"].dtype == "float64"
    _variant(tmp_path, "old", text, "")
    run_case(load_fom_case(case), MPI.COMM_SELF, resume=True, progress=False)
    with SnapshotStore.open(path, comm=MPI.COMM_SELF) as s:
        assert [ld.name for ld in s.loadings] == ["cold", "hot"] and s.n_snapshots == 6
        eps = s.read_global("strain", loading="hot")
        assert eps.shape == (6 * s.fields["strain"].n_entities, 3) and np.abs(eps).max() > 1e-5


def test_resume_with_another_law_names_the_extra_fields(tmp_path):
    """--resume of a norton store with an elastic case: the store's p and
    viscoplastic_strain would have no values for the new columns; the error names them
    (before: an append error about missing fields, after the solver had run)."""
    from rom.parallel import UserError
    text = _write_case(tmp_path).read_text()
    case = _variant(tmp_path, "law", text, "", drop_hot=True)
    run_case(load_fom_case(case), MPI.COMM_SELF, progress=False)
    elastic = _variant(tmp_path, "law", text, "").read_text().replace("law: norton", "law: elastic")
    elastic = "\n".join(line for line in elastic.splitlines()
                        if not line.lstrip().startswith(("K:", "n:")))
    case.write_text(elastic + "\n")
    with pytest.raises(UserError, match=r"holds field\(s\) 'p', 'viscoplastic_strain' that "
                                         r"this case's law does not write"):
        run_case(load_fom_case(case), MPI.COMM_SELF, resume=True, progress=False)


def test_model_from_single_precision_store_answers_like_double(tmp_path):
    """The plate_creep reduced model built from a ``snapshots.precision: single`` store has
    the double one's sizes and answers the inside and outside queries as it does, far
    below its own errors (1.8e-4 / 2.7e-2 on u, 9.5e-4 / 7.2e-2 on p against the full-order
    answers). Measured largest differences over the steps, relative to the largest norm of
    the double answer (benchmarks/store_precision.py, docs/snapshots.md): u 1.1e-9 and
    8.8e-7, p 1.3e-8 and 2.6e-6 (inside, outside); asserted with a margin of 10."""
    from test_online_common import INSIDE, OUTSIDE, TIMES, TOL, copy_case, run_fom

    from rom.config import load_case
    from rom.online import OnlineConfig, build_reduced_model, load
    models = {}
    for prec in ("double", "single"):
        case = copy_case(tmp_path / prec)
        case.write_text(case.read_text().replace(
            "{store: out/plate_creep.snapshots.h5}",
            f"{{store: out/plate_creep.snapshots.h5, precision: {prec}}}"))
        run_fom(case)
        models[prec] = load(build_reduced_model(load_case(case), None,
                                                OnlineConfig(indicator_tol=TOL)))
    with h5py.File(tmp_path / "single/out/plate_creep.snapshots.h5", "r") as f:
        assert f["fields/stress/values"].dtype == np.float32
    d, s = models["double"], models["single"]
    assert (s.n_modes, s.n_points) == (d.n_modes, d.n_points)
    for formula, tol_u, tol_p in ((INSIDE, 1e-8, 1.3e-7), (OUTSIDE, 8.8e-6, 2.6e-5)):
        a, b = d.solve(formula, TIMES), s.solve(formula, TIMES)
        steps = range(1, TIMES.size)
        nu = max(np.linalg.norm(a.displacement(i)) for i in steps)
        npp = max(np.linalg.norm(a.p(i)) for i in steps)
        du = max(np.linalg.norm(b.displacement(i) - a.displacement(i)) for i in steps) / nu
        dp = max(np.linalg.norm(b.p(i) - a.p(i)) for i in steps) / npp
        assert du <= tol_u and dp <= tol_p, (du, dp)


@pytest.mark.mpi
def test_sigterm_stops_after_the_loading_in_progress_and_resume_completes(
        comm, shared_tmp_path, monkeypatch):
    """A SIGTERM on rank 0 during the first loading: every rank finishes that loading,
    the store keeps it, the run ends with an error that says --resume; the resumed run
    adds the second loading. A second signal is not swallowed (the handler is restored)."""
    import os
    import signal

    from rom.parallel import UserError
    case_file = _write_case(shared_tmp_path) if comm.rank == 0 else shared_tmp_path / "case.yaml"
    comm.barrier()
    fc = load_fom_case(case_file)
    make = rom.fom.run.make_solver

    def signalling(*args, **kwargs):
        s = make(*args, **kwargs)
        step = s.step

        def step_then_signal(*a, **k):
            out = step(*a, **k)
            if comm.rank == 0 and not getattr(s, "_signalled", False):
                s._signalled = True
                os.kill(os.getpid(), signal.SIGTERM)     # as a batch system would
            return out
        s.step = step_then_signal
        return s

    monkeypatch.setattr(rom.fom.run, "make_solver", signalling)
    before = signal.getsignal(signal.SIGTERM)
    with pytest.raises(UserError, match=r"after 1 of the 2 loading\(s\).*--resume"):
        run_case(fc, comm, progress=False)
    assert signal.getsignal(signal.SIGTERM) is before
    store_path = shared_tmp_path / "out" / "bar.snapshots.h5"
    with SnapshotStore.open(store_path, comm=MPI.COMM_SELF) as s:
        assert [ld.name for ld in s.loadings] == ["cold"] and s.n_snapshots == 3
    monkeypatch.setattr(rom.fom.run, "make_solver", make)
    run_case(fc, comm, resume=True, progress=False)
    with SnapshotStore.open(store_path, comm=MPI.COMM_SELF) as s:
        assert [ld.name for ld in s.loadings] == ["cold", "hot"] and s.n_snapshots == 6
    comm.barrier()


# --------------------------------------------------------------------------- checkpoints
def _many_loadings(case: Path, *, extra: int, steps: int, checkpoint: str) -> list[str]:
    """Give the bar case ``extra`` more uniform-temperature loadings, ``steps`` time steps,
    ``fom.checkpoint: <checkpoint>`` and no XDMF; return the loading names in order."""
    text = case.read_text().replace("steps: 3", f"steps: {steps}").replace(
        "fom:\n", f"fom:\n  checkpoint: {checkpoint}\n  write_xdmf: false\n")
    text += "".join(f"    - {{name: u{j}, temperature: {{uniform: {450 + 40 * j}}}}}\n"
                    for j in range(extra))
    case.write_text(text)
    return ["cold", "hot"] + [f"u{j}" for j in range(extra)]


@pytest.mark.parametrize("value, expected", [
    (None, 600.0), ("0", 0.0), ("90.5", 90.5), ("1e3", 1000.0), ("null", None)])
def test_checkpoint_setting(tmp_path, value, expected):
    case = _write_case(tmp_path)
    if value is not None:
        case.write_text(case.read_text().replace("fom:\n", f"fom:\n  checkpoint: {value}\n"))
    assert load_fom_case(case).fom.checkpoint == expected


@pytest.mark.parametrize("value, words", [
    ("-1", "expected a value in [0, inf], got -1"),
    ("ten minutes", "expected a number, got 'ten minutes'"),
    ("[600]", "expected a number, got [600]"),
    (".inf", "expected a finite number"),
])
def test_bad_checkpoint_setting_names_file_and_key(tmp_path, value, words):
    from rom.config import CaseError
    case = _write_case(tmp_path)
    case.write_text(case.read_text().replace("fom:\n", f"fom:\n  checkpoint: {value}\n"))
    with pytest.raises(CaseError) as err:
        load_fom_case(case)
    assert str(err.value).startswith(f"{case}: fom.checkpoint: "), str(err.value)
    assert words in str(err.value)


def test_checkpoint_due():
    from rom.fom.run import checkpoint_due
    assert not checkpoint_due(1e9, None, 0.0)                # null: never
    assert checkpoint_due(0.0, 0.0, 1e3)                     # 0: after every loading
    assert not checkpoint_due(599.9, 600.0, 1.0)
    assert checkpoint_due(600.0, 600.0, 1.0)
    assert not checkpoint_due(600.0, 600.0, 100.0)           # slow copy: wait 10 x 100 s
    assert checkpoint_due(1000.0, 600.0, 100.0)


@pytest.mark.mpi
def test_checkpoints_publish_each_finished_loading(comm, shared_tmp_path, monkeypatch, capsys):
    """``fom.checkpoint: 0``: after each loading but the last, every rank commits and the
    path holds the finished loadings (complete); the default (600 s) commits nothing here."""
    case = _write_case(shared_tmp_path) if comm.rank == 0 else shared_tmp_path / "case.yaml"
    names = _many_loadings(case, extra=1, steps=2, checkpoint="0") if comm.rank == 0 else None
    names = comm.bcast(names, root=0)
    commit = SnapshotStore.commit
    seen = []

    def spy(store):
        commit(store)
        content = None
        if comm.rank == 0:
            with SnapshotStore.open(store.path, comm=MPI.COMM_SELF) as s:
                content = ([ld.name for ld in s.loadings], s.snapshot_table()["step"].tolist())
        seen.append(content)

    monkeypatch.setattr(SnapshotStore, "commit", spy)
    capsys.readouterr()
    store_path = run_case(load_fom_case(case), comm, progress=False)
    out = capsys.readouterr().out
    assert len(seen) == 2                                    # on every rank
    if comm.rank == 0:
        assert seen == [(names[:1], [1, 2]), (names[:2], [1, 2, 1, 2])]
        assert f"rom.fom: checkpoint: {store_path} holds 2 loading(s)" in out
    with SnapshotStore.open(store_path, comm=MPI.COMM_SELF) as s:
        assert [ld.name for ld in s.loadings] == names and s.n_snapshots == 6
    comm.barrier()
    if comm.rank == 0:
        case.write_text(case.read_text().replace("checkpoint: 0", "checkpoint: 600"))
    comm.barrier()
    run_case(load_fom_case(case), comm, overwrite=True, progress=False)
    assert len(seen) == 2 and "rom.fom: checkpoint" not in capsys.readouterr().out
    comm.barrier()


def test_sigkill_keeps_the_checkpointed_loadings_and_resume_completes(tmp_path, capsys):
    """A run killed outright (SIGKILL) after its first checkpoint: the store at the path
    opens and holds complete loadings only; --resume removes the dead run's temporary and
    computes the others; the result equals an uninterrupted run's."""
    import signal
    import time

    from rom.io.atomic import temp_path_for
    case = _write_case(tmp_path)
    names = _many_loadings(case, extra=4, steps=8, checkpoint="0")
    (tmp_path / "ref.yaml").write_text(case.read_text().replace("out/bar.snapshots.h5",
                                                                "out/ref.h5"))
    store_path = tmp_path / "out" / "bar.snapshots.h5"
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("PMI_", "PMIX_", "MPIR_", "HYDRA_", "OMPI_"))}
    log = tmp_path / "log.txt"
    with log.open("w") as out:
        proc = subprocess.Popen([sys.executable, "-m", "rom.fom", str(case), "--quiet"],
                                cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 120
    while not store_path.exists():     # appears at the first checkpoint (1 loading)
        assert proc.poll() is None, log.read_text()
        assert time.monotonic() < deadline, "no checkpoint after 120 s"
        time.sleep(0.002)
    proc.kill()
    proc.wait()
    assert proc.returncode == -signal.SIGKILL, "the run ended before the kill"
    leftover = temp_path_for(store_path, proc.pid)
    assert leftover.is_file()
    with SnapshotStore.open(store_path, comm=MPI.COMM_SELF) as s:
        held = [ld.name for ld in s.loadings]
        table = s.snapshot_table()
    assert 1 <= len(held) < len(names) and held == names[:len(held)]
    assert table["loading"].tolist() == np.repeat(np.arange(len(held)), 8).tolist()
    assert table["step"].tolist() == list(range(1, 9)) * len(held)
    capsys.readouterr()
    run_case(load_fom_case(case), MPI.COMM_SELF, resume=True, progress=False)
    printed = capsys.readouterr().out
    assert f"resuming {store_path}: {len(held)} loading(s) already stored, " \
           f"{len(names) - len(held)} to run" in printed
    assert "temporary file(s) left by killed runs" in printed and leftover.name in printed
    assert not leftover.exists() and not list(store_path.parent.glob(".bar.snapshots.h5.tmp-*"))
    ref_path = run_case(load_fom_case(tmp_path / "ref.yaml"), MPI.COMM_SELF, progress=False)
    with SnapshotStore.open(store_path, comm=MPI.COMM_SELF) as s, \
            SnapshotStore.open(ref_path, comm=MPI.COMM_SELF) as r:
        assert [ld.name for ld in s.loadings] == names
        assert np.array_equal(s.snapshot_table(), r.snapshot_table())
        assert [ld.parameters for ld in s.loadings] == [ld.parameters for ld in r.loadings]
        assert sorted(s.fields) == sorted(r.fields)
        for name in r.fields:
            a, b = s.read_global(name), r.read_global(name)
            assert np.abs(a - b).max() <= 1e-10 * max(np.abs(b).max(), 1e-300), name


@pytest.mark.mpi
def test_failed_checkpoint_warns_and_the_run_goes_on(comm, shared_tmp_path, monkeypatch, capsys):
    """No room for the checkpoint's copy: one warning, no more checkpoints, no partial copy
    left, and the run still publishes the complete store at its end."""
    import errno
    import shutil
    case = _write_case(shared_tmp_path) if comm.rank == 0 else shared_tmp_path / "case.yaml"
    names = _many_loadings(case, extra=1, steps=2, checkpoint="0") if comm.rank == 0 else None
    names = comm.bcast(names, root=0)
    copyfile, attempts = shutil.copyfile, []

    def no_room(src, dst):
        if not str(dst).endswith(".commit"):
            return copyfile(src, dst)
        attempts.append(dst)
        with open(dst, "wb") as f:
            f.write(b"partial")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(shutil, "copyfile", no_room)
    capsys.readouterr()
    store_path = run_case(load_fom_case(case), comm, progress=False)
    err = capsys.readouterr().err
    if comm.rank == 0:
        assert len(attempts) == 1                      # no second try after the failure
        assert err.count("rom.fom: warning: checkpoint of") == 1
        assert "No space left on device" in err and "going on without checkpoints" in err
        assert sorted(p.name for p in store_path.parent.iterdir()
                      if p.name.startswith(".")) == []
    with SnapshotStore.open(store_path, comm=MPI.COMM_SELF) as s:
        assert [ld.name for ld in s.loadings] == names and s.n_snapshots == 6
    comm.barrier()

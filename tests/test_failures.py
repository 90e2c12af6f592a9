"""What survives a failure (issue 29: defects 4, 6, 7, 8, 10; docs/guide.md).

Each case asserts the clear error (a ``UserError`` naming the file and the field or
section), the absence of side effects (no file created, none replaced: byte-identical),
or the bounded time. The deadlock case runs ``python -m rom.fom`` under ``mpiexec -n 3``.
"""
from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import h5py
import meshio
import numpy as np
import pytest
from mpi4py import MPI

pytest.importorskip("petsc4py")

from petsc4py import PETSc  # noqa: E402,F401  (PetscInitialize is collective: every rank)
from test_online_common import copy_case, plate_mesh, run_fom  # noqa: E402

import rom  # noqa: E402
from rom.config import load_case  # noqa: E402
from rom.io.atomic import temp_path_for  # noqa: E402
from rom.parallel import UserError  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
MPIEXEC = Path(sys.executable).with_name("mpiexec")
#: the staging directory of a killed rom.offline (rom.io.atomic.STAGE_PREFIX + its pid)
STAGE_PREFIX = ".rom-stage.tmp-"
#: tests that start their own processes (an MPI job, a process killed) run serially only
serial_only = pytest.mark.skipif(MPI.COMM_WORLD.size > 1, reason="starts its own processes")


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def digests(directory: Path) -> dict[str, str]:
    """Every file under ``directory`` (relative name -> SHA-256)."""
    return {str(p.relative_to(directory)): digest(p)
            for p in sorted(directory.rglob("*")) if p.is_file()}


def dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def offline(case_file: Path):
    from rom.offline import run
    return run(load_case(case_file), MPI.COMM_SELF, progress=False, out=io.StringIO())


# ---------------------------------------------------------------- a trained plate_creep
@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """plate_creep: full-order store, then ``rom.offline`` (basis, calibrated model), run
    with leftovers of killed offline runs next to its outputs. Returns the directory and
    the leftovers."""
    base = tmp_path_factory.mktemp("trained")
    case_file = copy_case(base)
    case_file.write_text(case_file.read_text().replace(
        "online: {indicator_tol: 5.0e-4}",
        "online: {indicator_tol: 5.0e-4, indicator_factor: 2.0}"))
    run_fom(case_file)
    out = base / "out"
    pid = dead_pid()
    leftovers = [temp_path_for(out / "plate_creep.rom.h5", pid),
                 temp_path_for(out / "plate_creep.basis.h5", pid), out / f"{STAGE_PREFIX}{pid}"]
    leftovers[0].write_bytes(b"x" * 100)
    leftovers[1].write_bytes(b"x" * 100)
    leftovers[2].mkdir()
    (leftovers[2] / "plate_creep.rom.h5").write_bytes(b"partial")
    offline(case_file)
    return base, leftovers


@pytest.fixture
def plate(trained, tmp_path):
    """A copy of the trained case directory (each test damages its own)."""
    base, _ = trained
    dest = tmp_path / "plate"
    shutil.copytree(base, dest)
    return dest


def test_offline_removes_stale_temporaries_and_publishes_the_calibrated_model(trained):
    base, leftovers = trained
    assert not any(p.exists() for p in leftovers)
    assert not list((base / "out").glob(".*"))              # nothing hidden left behind
    meta = rom.load(base / "out" / "plate_creep.rom.h5").meta
    assert "training_check" in meta and meta["indicator_tol"] != 5.0e-4


# ---------------------------------------------------------------- defect 6: rom.offline
def _fails_without_replacing(plate: Path, match: str | None, exc=UserError) -> None:
    """``rom.offline`` on ``plate`` raises ``exc`` matching ``match`` and leaves every file
    of the output directory byte-identical, none added."""
    before = digests(plate / "out")
    with pytest.raises(exc, match=match):
        offline(plate / "case.yaml")
    assert digests(plate / "out") == before


def test_offline_inf_in_stress_names_store_and_field(plate):
    store = plate / "out" / "plate_creep.snapshots.h5"
    with h5py.File(store, "a") as f:
        f["fields/stress/values"][7, 5] = np.inf
    _fails_without_replacing(plate, rf"{store}: field 'stress' holds 0 NaN and 1 Inf .*"
                                    r"loading 't800_a100', step 6")


def test_offline_nan_in_displacement_names_store_and_field(plate):
    store = plate / "out" / "plate_creep.snapshots.h5"
    with h5py.File(store, "a") as f:
        f["fields/displacement/values"][3, 9] = np.nan
    _fails_without_replacing(plate, rf"{store}: field 'displacement' holds 1 NaN")


def test_offline_store_from_another_mesh(plate):
    meshio.write(plate / "mesh.inp", plate_mesh((9, 3, 1)))
    _fails_without_replacing(plate, r"plate_creep.snapshots.h5: field .* \(store and mesh differ")


def test_offline_store_without_snapshots(plate):
    from rom.io.snapshots import SnapshotStore
    store = plate / "out" / "plate_creep.snapshots.h5"
    with SnapshotStore.create(store, overwrite=True) as s:
        s.add_field("displacement", kind="nodal", n_entities=88, n_components=3, units="m")
    _fails_without_replacing(plate, rf"{store}: the snapshot store holds no snapshots")


def test_offline_empty_mesh(plate):
    (plate / "mesh.inp").write_text("")
    _fails_without_replacing(plate, rf"mesh file {plate / 'mesh.inp'} is empty")


@pytest.mark.mpi
def test_offline_failure_on_one_rank_replaces_nothing(comm, shared_tmp_path):
    """At 1, 2 and 3 ranks: Inf in the stress rows of the last rank only; every rank raises
    one error naming the store and the field, and the outputs stay byte-identical."""
    from rom.offline import run
    base = shared_tmp_path / "mpi"
    before = None
    if comm.rank == 0:                    # a trained case, serially
        case_file = copy_case(base)
        run_fom(case_file)
        offline(case_file)
        with h5py.File(base / "out" / "plate_creep.snapshots.h5", "a") as f:
            f["fields/stress/values"][-1, 3] = -np.inf
        before = digests(base / "out")
    before = comm.bcast(before, root=0)
    with pytest.raises(UserError, match="plate_creep.snapshots.h5: field 'stress' holds 0 NaN "
                                        "and 1 Inf"):
        run(load_case(base / "case.yaml"), comm, progress=False, out=io.StringIO())
    comm.barrier()
    assert digests(base / "out") == before


def test_offline_failure_in_training_check_keeps_the_calibrated_model(plate, monkeypatch):
    """An exception in the training check (as a kill there would) leaves the previous,
    calibrated model and basis in place, and no temporaries."""
    import rom.online.training as training

    def broken(*args, **kwargs):
        raise KeyboardInterrupt
    monkeypatch.setattr(training, "training_check", broken)
    _fails_without_replacing(plate, None, exc=KeyboardInterrupt)
    assert not list((plate / "out").glob(".*"))


def test_training_check_names_nan_in_the_store_and_keeps_the_model(plate):
    """python -m rom.online.training on a store damaged after the build: the error names
    the store, the field and the snapshot (was: NaN errors, a tolerance from NaN)."""
    from rom.online.training import check_and_calibrate
    store = plate / "out" / "plate_creep.snapshots.h5"
    with h5py.File(store, "a") as f:
        f["fields/p/values"][11, 20] = np.nan
    before = digests(plate / "out")
    with pytest.raises(UserError, match=rf"^{store}: field 'p' holds 1 NaN and 0 Inf .*"
                                        r"loading 't950_a100', step 5"):
        check_and_calibrate(load_case(plate / "case.yaml"), plate / "out" / "plate_creep.rom.h5",
                            MPI.COMM_SELF)
    assert digests(plate / "out") == before


#: python -m rom.offline killed (SIGKILL: no cleanup at all) inside its training check
KILLED = r"""
import os, signal, sys
import rom.online.training as training
def killed(*args, **kwargs):
    os.kill(os.getpid(), signal.SIGKILL)
training.training_check = killed
from rom.offline import main
sys.exit(main(sys.argv[1:]))
"""


@serial_only
def test_offline_killed_in_training_check_keeps_the_calibrated_model(plate):
    """kill -9 during the training check: the calibrated model and the basis stay; the
    next run removes what the killed one left and publishes its own outputs."""
    before = digests(plate / "out")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        [str(ROOT)] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p])}
    proc = subprocess.run([sys.executable, "-c", KILLED, "case.yaml", "-q"], cwd=plate,
                          env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    left = [p for p in (plate / "out").iterdir() if p.name.startswith(STAGE_PREFIX)]
    assert len(left) == 1 and (left[0] / "plate_creep.rom.h5").is_file()
    after = digests(plate / "out")
    assert {k: v for k, v in after.items() if not k.startswith(STAGE_PREFIX)} == before
    out = io.StringIO()
    from contextlib import redirect_stdout
    with redirect_stdout(out):
        offline(plate / "case.yaml")
    assert f"removed 1 temporary file(s) or directories left by killed runs: {left[0]}" \
        in out.getvalue()
    assert not left[0].exists()
    assert "training_check" in rom.load(plate / "out" / "plate_creep.rom.h5").meta


# ---------------------------------------------------------------- defect 7: rom.fom
def test_fom_empty_mesh_is_a_clear_error_and_writes_nothing(tmp_path):
    from rom.fom.run import load_fom_case, run_case
    from rom.io.mesh import MeshError
    case_file = copy_case(tmp_path)
    (tmp_path / "mesh.inp").write_text("")
    with pytest.raises(MeshError, match=f"mesh file {tmp_path / 'mesh.inp'} is empty"):
        run_case(load_fom_case(case_file), MPI.COMM_SELF, progress=False)
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


# ---------------------------------------------------------------- defects 7, 8: model files
def _damage(path: Path, how: str) -> None:
    if how == "truncated":
        data = path.read_bytes()
        path.write_bytes(data[:len(data) // 2])
    elif how == "not HDF5":
        path.write_text("name: not a model\n")
    elif how == "eps deleted":
        with h5py.File(path, "a") as f:
            del f["reduced/eps"]
    elif how == "meta broken":
        with h5py.File(path, "a") as f:
            f.attrs["meta"] = f.attrs["meta"][:-10]
    elif how == "weights cut":
        with h5py.File(path, "a") as f:
            w = f["reduced/weights"][:40]
            del f["reduced/weights"]
            f["reduced/weights"] = w
    elif how == "nan in eps":
        with h5py.File(path, "a") as f:
            f["reduced/eps"][2, 3, 1] = np.nan
    elif how == "negative weight":
        with h5py.File(path, "a") as f:
            f["reduced/weights"][0] = -1.0


DAMAGES = {"truncated": "not a readable HDF5 file",
           "not HDF5": "not a readable HDF5 file",
           "eps deleted": "dataset reduced/eps is missing",
           "meta broken": "attribute 'meta' is not valid JSON",
           "weights cut": r"dataset reduced/weights has shape \(40,\), expected \(\d+,\)",
           "nan in eps": r"dataset reduced/eps holds 1 NaN and 0 Inf",
           "negative weight": r"reduced/weights: 1 negative reduced weight"}


@pytest.mark.parametrize("how", list(DAMAGES))
def test_load_checks_the_whole_file(trained, tmp_path, how):
    path = tmp_path / "model.rom.h5"
    shutil.copy(trained[0] / "out" / "plate_creep.rom.h5", path)
    _damage(path, how)
    with pytest.raises(UserError, match=rf"^{path}: {DAMAGES[how]}"):
        rom.load(path)


@pytest.mark.parametrize("how", ["truncated", "eps deleted"])
def test_study_and_training_name_a_damaged_model(plate, how):
    from rom.online.training import check_and_calibrate
    from rom.study.run import study_inputs
    path = plate / "out" / "plate_creep.rom.h5"
    _damage(path, how)
    before = digests(plate / "out")
    with pytest.raises(UserError, match=rf"^{path}: {DAMAGES[how]}"):
        study_inputs(plate / "case.yaml", MPI.COMM_SELF)
    with pytest.raises(UserError, match=rf"^{path}: {DAMAGES[how]}"):
        check_and_calibrate(load_case(plate / "case.yaml"), path, MPI.COMM_SELF)
    assert digests(plate / "out") == before


def test_load_local_models_checks_every_model(trained, tmp_path):
    """A local reduced-models file is checked model by model: a dataset cut in the
    second model is named with its group."""
    from rom.online.local import LocalReducedModels
    model = rom.load(trained[0] / "out" / "plate_creep.rom.h5")
    n = model.n_modes
    sel = {"sensors": np.array([0]), "sensor_coords": np.zeros((1, 3)),
           "features": np.zeros((2, 1)), "column_labels": np.array([0, 1]),
           "reference": np.array([0, 1]), "labels": np.array([0, 1]),
           "medoids": np.array([0, 1]), "metric": "euclidean", "representatives": "all"}
    meta = {"columns": [[0], [1]], "level": "snapshots", "dissimilarity": "sine"}
    local = LocalReducedModels([model, model.copy()], sel, {(0, 1): np.eye(n),
                                                            (1, 0): np.eye(n)}, meta)
    path = tmp_path / "local.rom.h5"
    local.save(path)
    assert isinstance(rom.load(path), LocalReducedModels)
    with h5py.File(path, "a") as f:
        f["model_1/full/phi_sv"][0] = np.inf
    with pytest.raises(UserError, match=rf"^{path}: dataset model_1/full/phi_sv holds 0 NaN "
                                        "and 1 Inf"):
        rom.load(path)


# ---------------------------------------------------------------- defects 7, 10: stale model
def _edit_case(plate: Path, old: str, new: str) -> Path:
    case_file = plate / "case.yaml"
    text = case_file.read_text()
    assert old in text
    case_file.write_text(text.replace(old, new))
    return case_file


def test_study_refuses_a_model_built_for_another_material(plate):
    from rom.study.run import study_inputs
    case_file = _edit_case(plate, "values: [2.0e11, 1.4e11]", "values: [1.0e11, 0.7e11]")
    with pytest.raises(UserError, match=r"built for another material than .*case.yaml's .*"
                                        r"rebuild it with python -m rom.offline"):
        study_inputs(case_file, MPI.COMM_SELF)


def test_training_refuses_a_model_of_another_case(plate):
    """A model of another mesh and time grid (was an IndexError in the training check)."""
    from rom.online.training import check_and_calibrate
    meshio.write(plate / "mesh.inp", plate_mesh((9, 3, 1)))
    case_file = _edit_case(plate, "steps: 8", "steps: 6")
    before = digests(plate / "out")
    with pytest.raises(UserError, match="built for another mesh, times than"):
        check_and_calibrate(load_case(case_file), plate / "out" / "plate_creep.rom.h5",
                            MPI.COMM_SELF)
    assert digests(plate / "out") == before


def test_model_without_case_hashes_gets_a_warning(plate):
    from rom.online.model import load_for_case
    path = plate / "out" / "plate_creep.rom.h5"
    with h5py.File(path, "a") as f:
        meta = json.loads(f.attrs["meta"])
        del meta["case_hashes"]
        f.attrs["meta"] = json.dumps(meta)
    with pytest.warns(UserWarning, match="does not record the case it was built for"):
        load_for_case(load_case(plate / "case.yaml"), path)


# ---------------------------------------------------------------- defect 4: rank failure
BAR = """
name: bar
mesh: bar.inp
snapshots: {store: out/bar.snapshots.h5}
output: {directory: out, plot: false, write_modes: false}
material:
  law: norton
  E: {values: [2.0e11]}
  nu: {values: [0.3]}
  alpha: {values: [1.2e-5]}
  T_ref: 300
  K: {values: [9.0e8]}
  n: {values: [5]}
loading:
  dirichlet: [{group: xmin}]
  pressure: [{group: xmax, value: -1.0e8}]
  times: {start: 0, stop: 10, steps: 4}
fom:
  write_xdmf: false
  loadings:
    - {name: a, temperature: {uniform: 700}}
"""

#: rom.fom with an exception on rank 1 in its second MechanicalSolver.step; the time of
#: the failure on stderr
INJECT = r"""
import sys, time
from mpi4py import MPI
import petsc4py
petsc4py.init(sys.argv[:1])
from rom.fom import solver
step, calls = solver.MechanicalSolver.step, [0]
def failing(self, *args, **kwargs):
    calls[0] += 1
    if MPI.COMM_WORLD.rank == 1 and calls[0] == 2:
        sys.stderr.write(f"FAILING AT {time.time()}\n")
        sys.stderr.flush()
        raise RuntimeError("injected failure on rank 1")
    return step(self, *args, **kwargs)
solver.MechanicalSolver.step = failing
from rom.fom.__main__ import main
sys.exit(main(sys.argv[1:]))
"""


@serial_only
@pytest.mark.skipif(not MPIEXEC.exists(), reason="needs the venv's mpiexec")
def test_fom_exception_on_one_rank_stops_every_rank(tmp_path):
    """Rank 1 raises inside a step while ranks 0 and 2 are in PETSc's collectives: every
    rank exits within 10 s with rank 1's message, and the good store is not replaced."""
    from rom.fom.run import load_fom_case, run_case
    from rom.meshes import solid_block
    meshio.write(tmp_path / "bar.inp", solid_block((6, 2, 2), lengths=(0.04, 0.01, 0.01)))
    (tmp_path / "case.yaml").write_text(BAR)
    store = run_case(load_fom_case(tmp_path / "case.yaml"), MPI.COMM_SELF, progress=False)
    good = digest(store)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        [str(ROOT)] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p])}
    proc = subprocess.Popen([str(MPIEXEC), "-n", "3", sys.executable, "-c", INJECT,
                             str(tmp_path / "case.yaml"), "--overwrite", "--quiet"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            cwd=tmp_path, env=env, start_new_session=True)
    try:
        _, err = proc.communicate(timeout=120)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        pytest.fail("rom.fom hung after an exception on rank 1")
    end = time.time()
    assert proc.returncode != 0
    assert "injected failure on rank 1" in err and "[rank 1]" in err
    failed_at = float(next(ln for ln in err.splitlines() if ln.startswith("FAILING AT"))
                      .split()[-1])
    assert end - failed_at < 10.0, err
    assert digest(store) == good


def test_nan_in_a_full_size_array_is_named_when_its_rows_are_read(tmp_path):
    """rom.load reads no full-size array (a query reads none): their values are checked by
    rows when read, and a damaged one is a UserError naming the file and the dataset."""
    import shutil

    import h5py
    from test_online_common import INSIDE, TIMES, copy_case, run_fom

    from rom.config import load_case
    from rom.online import OnlineConfig, build_reduced_model, load
    from rom.parallel import UserError
    case_file = copy_case(tmp_path)
    run_fom(case_file)
    path = build_reduced_model(load_case(case_file), None, OnlineConfig(indicator_tol=5e-4))
    bad = tmp_path / "bad.rom.h5"
    shutil.copy(path, bad)
    with h5py.File(bad, "r+") as f:
        f["full/phi"][5, 0] = np.nan
    model = load(bad)
    res = model.solve(INSIDE, TIMES)               # the reduced solve needs no phi
    with pytest.raises(UserError, match=r"bad.rom.h5: dataset /full/phi holds 1 NaN.*row 5"):
        res.displacement(1)

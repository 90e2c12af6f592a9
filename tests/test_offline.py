"""Offline stage end to end: case -> snapshot store -> POD -> reduced-basis file.

The POD written by ``rom.offline`` is checked against numpy's SVD of the
mass-weighted snapshot matrix rebuilt here from the analytical formula, and the
file is the same at 1, 2 and 3 ranks.
"""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest
import yaml

from rom.analytical import GoodierHotspot, sample_parameters
from rom.config import load_case
from rom.io.basis import read_basis
from rom.linalg.distributed import gather_rows
from rom.meshes import lumped_mass, plate_with_hole
from rom.offline import run

ROOT = Path(__file__).resolve().parents[1]


def small_case(directory: Path, **pod) -> Path:
    mesh = plate_with_hole(n_theta=24, n_radial=5, n_thick=1)
    mesh.write(directory / "mesh.vtu")
    case = {
        "name": "small", "mesh": "mesh.vtu",
        "snapshots": {"source": "analytical", "store": "out/snap.h5", "analytical": {
            "samples": 5, "seed": 3, "times": {"steps": 4},
            "parameters": {"width": {"min": 0.008, "max": 0.014},
                           "y0": {"min": -0.02, "max": 0.02}}}},
        "pod": {"rtol": 1e-3, "product": "lumped_mass", **pod},
        "output": {"directory": "out", "plot": False},
    }
    (directory / "case.yaml").write_text(yaml.safe_dump(case))
    return directory / "case.yaml"


def reference_pod(case_path: Path):
    """Serial reference: the weighted snapshot matrix built directly, and numpy's SVD of it."""
    case = load_case(case_path)
    import meshio
    mesh = meshio.read(case.mesh)
    src = case.snapshots.analytical
    mus = sample_parameters({k: (r.min, r.max) for k, r in src.parameters.items()},
                            src.samples, src.seed)
    times = np.linspace(src.times.start, src.times.stop, src.times.steps + 1)[1:]
    X = np.column_stack([GoodierHotspot.displacement(mesh.points, t, times[-1], mu).ravel()
                         for mu in mus for t in times])
    w = np.repeat(lumped_mass(mesh), 3)
    U, s, _ = np.linalg.svd(np.sqrt(w)[:, None] * X, full_matrices=False)
    return X, w, U / np.sqrt(w)[:, None], s


@pytest.mark.mpi
@pytest.mark.parametrize("method", ["snapshots", "tsqr"])
def test_offline_matches_numpy_svd_at_any_rank_count(comm, shared_tmp_path, method):
    case_path = small_case(shared_tmp_path, method=method) if comm.rank == 0 else None
    case_path = comm.bcast(case_path, root=0)
    case = load_case(case_path)
    res = run(case, comm, progress=False, out=open("/dev/null", "w"))
    basis = read_basis(res.basis, comm=comm)
    modes = gather_rows(basis.modes, comm, root=None)
    X, w, U, s = reference_pod(case_path)
    n = res.n_modes
    # truncation rule: smallest n with tail energy <= rtol^2 * total
    tail = np.sqrt(np.maximum((s ** 2).sum() - np.cumsum(s ** 2), 0) / (s ** 2).sum())
    assert n == int(np.argmax(tail <= 1e-3)) + 1
    np.testing.assert_allclose(basis.singular_values, s[:n], rtol=1e-10)
    # modes equal to numpy's up to sign, and M-orthonormal
    signs = np.sign(np.sum(modes * w[:, None] * U[:, :n], axis=0))
    np.testing.assert_allclose(modes * signs, U[:, :n], atol=1e-8 * np.abs(U[:, :n]).max())
    np.testing.assert_allclose(modes.T @ (w[:, None] * modes), np.eye(n), atol=1e-12)
    # self-describing file
    assert basis.file_attrs["schema"] == "rom.reduced_basis"
    assert basis.file_attrs["case_sha256"] == case.source_hash
    assert basis.attrs["method"] == method and basis.attrs["n_snapshots"] == X.shape[1]
    if comm.rank == 0:
        with h5py.File(res.basis, "r") as f:
            assert f["pod/modes"].shape == (X.shape[0], n)
        assert (shared_tmp_path / "out/small.modes.vtu").is_file()


def test_cli_runs_bundled_demo_case(tmp_path):
    """The `make demo` command on the bundled case, serially, with outputs redirected."""
    text = (ROOT / "cases/plate/case.yaml").read_text()
    data = yaml.safe_load(text)
    data["mesh"] = str(ROOT / "cases/plate/mesh.vtu")
    data["snapshots"]["store"] = str(tmp_path / "snap.h5")
    data["output"]["directory"] = str(tmp_path)
    (tmp_path / "case.yaml").write_text(yaml.safe_dump(data))
    proc = subprocess.run([sys.executable, "-m", "rom.offline", "-q", str(tmp_path / "case.yaml")],
                          capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr
    assert "modes kept" in proc.stdout and "energy captured" in proc.stdout
    basis = read_basis(tmp_path / "plate.basis.h5")
    assert basis.attrs["energy"] >= 1 - 1e-6
    assert 5 <= len(basis.singular_values) <= 240
    assert (tmp_path / "plate.modes.vtu").is_file()
    assert (tmp_path / "plate.singular_values.png").is_file()


def test_cli_help():
    proc = subprocess.run([sys.executable, "-m", "rom.offline", "--help"], capture_output=True,
                          text=True, timeout=60, cwd=ROOT)
    assert proc.returncode == 0 and "case file" in proc.stdout


@pytest.mark.mpi
def test_offline_interp_stage(comm, shared_tmp_path):
    """A case with only an `interp:` section: EIM + RB written, bound valid on held-out parameters."""
    path = shared_tmp_path / "interp.yaml"
    if comm.rank == 0:
        path.write_text(yaml.safe_dump({
            "name": "heat", "output": {"directory": str(shared_tmp_path / "o")},
            "interp": {"problem": "gaussian_heat", "cells": 8, "width": 0.5,
                       "training_samples": 16, "rb_tol": 1e-5, "max_basis": 8,
                       "validation_samples": 4}}))
    comm.Barrier()
    res = run(load_case(path), comm, progress=False, out=open("/dev/null", "w"))
    assert res.basis is None and res.interp is not None
    eff = res.interp.history["validation_effectivity"]
    assert np.all(eff >= 1.0) and np.all(eff <= 2.0), eff
    assert (shared_tmp_path / "o/heat.interp.h5").is_file()


@pytest.mark.mpi
def test_offline_clustering_stage(comm, shared_tmp_path):
    """`clustering:` writes local bases whose clusters partition the snapshots, same at any rank count."""
    case_path = small_case(shared_tmp_path) if comm.rank == 0 else None
    case_path = comm.bcast(case_path, root=0)
    if comm.rank == 0:
        data = yaml.safe_load(case_path.read_text())
        data["clustering"] = {"k": 2, "dissimilarity": "sine"}
        case_path.write_text(yaml.safe_dump(data))
    comm.Barrier()
    res = run(load_case(case_path), comm, progress=False, out=open("/dev/null", "w"))
    lb = res.local_bases
    assert sorted(np.concatenate([lb.members(c) for c in range(2)]).tolist()) == list(range(20))
    # the clusters are the serial ones: k-medoids on the replicated dissimilarity matrix
    ref = comm.bcast(lb.labels if comm.rank == 0 else None, root=0)
    assert np.array_equal(lb.labels, ref)
    assert (shared_tmp_path / "out/small.local_bases.h5").is_file()

"""Atomic HDF5 writing: the destination appears only on success, never half-written."""
from __future__ import annotations

import h5py
import numpy as np
import pytest

from rom.io.atomic import atomic_h5, stamp_provenance, temp_path_for


def test_file_appears_only_on_success(tmp_path):
    path = tmp_path / "a.h5"
    with atomic_h5(path) as f:
        f["x"] = np.arange(5.0)
        assert not path.exists()
        assert temp_path_for(path).exists()
    assert path.exists() and not temp_path_for(path).exists()
    with h5py.File(path, "r") as f:
        assert np.array_equal(f["x"][()], np.arange(5.0))


def test_exception_removes_temp_and_keeps_old_file(tmp_path):
    path = tmp_path / "a.h5"
    with atomic_h5(path) as f:
        f["x"] = 1.0
    with pytest.raises(RuntimeError, match="solver diverged"), atomic_h5(path) as f:
        f["x_new"] = 2.0
        raise RuntimeError("solver diverged")
    assert not temp_path_for(path).exists()
    with h5py.File(path, "r") as f:
        assert list(f) == ["x"] and f["x"][()] == 1.0


def test_append_mode_is_atomic(tmp_path):
    path = tmp_path / "a.h5"
    with atomic_h5(path) as f:
        f["x"] = 1.0
    with atomic_h5(path, mode="a") as f:
        f["y"] = 2.0
    with pytest.raises(ValueError), atomic_h5(path, mode="a") as f:
        f["z"] = 3.0
        raise ValueError("boom")
    with h5py.File(path, "r") as f:
        assert sorted(f) == ["x", "y"]


def test_bad_mode_and_missing_directory(tmp_path):
    with pytest.raises(ValueError, match="mode"), atomic_h5(tmp_path / "a.h5", mode="r"):
        pass
    with pytest.raises(FileNotFoundError, match="does not exist"), \
            atomic_h5(tmp_path / "nodir" / "a.h5"):
        pass


def test_stamp_provenance(tmp_path):
    with atomic_h5(tmp_path / "a.h5") as f:
        stamp_provenance(f, schema="rom.test", schema_version=3, case_hash="abc",
                         options={"k": 1}, skipped=None)
    with h5py.File(tmp_path / "a.h5", "r") as f:
        a = f.attrs
        assert a["schema"] == "rom.test" and a["schema_version"] == 3
        assert a["case_hash"] == "abc" and a["options"] == '{"k": 1}'
        assert "skipped" not in a
        for key in ("rom_version", "created_utc", "hostname", "h5py_version"):
            assert key in a
        assert a["created_utc"].endswith("+00:00")


@pytest.mark.mpi
def test_collective_commit_and_abort(comm, shared_tmp_path):
    path = shared_tmp_path / "coll.h5"
    with atomic_h5(path, comm=comm) as f:
        assert (f is not None) == (comm.rank == 0)
        if f is not None:
            f["n"] = comm.size
    comm.Barrier()
    assert path.exists()
    # an error on the last rank only: every rank raises, the old file stays
    last = comm.size - 1
    with pytest.raises((RuntimeError, KeyError)) as info, atomic_h5(path, comm=comm) as f:
        if f is not None:
            f["n"] = -1
        if comm.rank == last:
            raise KeyError("failure on the last rank")
    if comm.rank != last:
        assert f"rank(s) [{last}] failed" in str(info.value)
    comm.Barrier()
    with h5py.File(path, "r") as f:
        assert f["n"][()] == comm.size
    assert not temp_path_for(path).exists() or comm.rank != 0

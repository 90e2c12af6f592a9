"""Atomic HDF5 writing: the destination appears only on success, never half-written."""
from __future__ import annotations

import os
import subprocess
import sys

import h5py
import numpy as np
import pytest

from rom.io.atomic import AtomicH5, atomic_h5, remove_stale_temps, stamp_provenance, temp_path_for


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


def test_remove_stale_temps_removes_only_dead_writers_leftovers(tmp_path):
    """Leftovers of a dead pid (temporary and .commit copy) go, with their sizes; a live
    pid's are kept, and so is every name that is not exactly this store's pattern."""
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()                                   # its pid is no longer alive
    live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        path = tmp_path / "s.h5"
        tmp = temp_path_for(path, dead.pid)
        stale = {tmp: 1000, tmp.with_name(tmp.name + ".commit"): 2500}
        kept = [temp_path_for(path, live.pid), temp_path_for(path, os.getpid()),
                temp_path_for(tmp_path / "other.h5", dead.pid),
                tmp_path / f".sxh5.tmp-{dead.pid}",          # '.' of the name is not a wildcard
                tmp_path / f".s.h5.tmp-{dead.pid}.bak", tmp_path / f"s.h5.tmp-{dead.pid}",
                tmp_path / ".s.h5.tmp-12x", tmp_path / ".s.h5.tmp-0"]
        for p, size in stale.items():
            p.write_bytes(b"x" * size)
        for p in kept:
            p.write_bytes(b"keep")
        temp_path_for(tmp_path / "d.h5", dead.pid).mkdir()         # not a file: kept
        removed = remove_stale_temps(path)
        assert removed == sorted(stale.items())
        assert not any(p.exists() for p in stale)
        assert all(p.read_bytes() == b"keep" for p in kept)
        assert remove_stale_temps(path) == []
        assert remove_stale_temps(tmp_path / "d.h5") == []
        assert temp_path_for(tmp_path / "d.h5", dead.pid).is_dir()
        assert remove_stale_temps(tmp_path / "absent" / "s.h5") == []
    finally:
        live.kill()
        live.wait()


def test_failed_commit_removes_its_partial_copy_and_keeps_writing(tmp_path, monkeypatch):
    """A commit that fails half-way (disk full) leaves the path at the last commit, no
    partial .commit copy, and a file that can still be written and published."""
    import errno
    import shutil

    path = tmp_path / "a.h5"
    handle = AtomicH5(path)
    handle.file["x"] = 1.0
    handle.commit()
    copy = temp_path_for(path).with_name(temp_path_for(path).name + ".commit")

    def no_room(src, dst):
        with open(dst, "wb") as f:
            f.write(b"partial")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(shutil, "copyfile", no_room)
    handle.file["y"] = 2.0
    with pytest.raises(OSError, match="No space left"):
        handle.commit()
    monkeypatch.undo()
    assert not copy.exists()
    with h5py.File(path, "r") as f:
        assert list(f) == ["x"]
    handle.file["z"] = 3.0
    handle.close()
    with h5py.File(path, "r") as f:
        assert sorted(f) == ["x", "y", "z"]
    assert not temp_path_for(path).exists()

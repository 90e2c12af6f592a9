"""Communicator helpers: splits, and an error on one rank stopping every rank (no hang)."""
from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from rom.parallel import Progress, bcast_arrays, even_split, row_offsets

MPIEXEC = Path(sys.executable).with_name("mpiexec")
ROOT = Path(__file__).resolve().parents[1]


def test_even_split():
    off = even_split(10, 3)
    assert off.tolist() == [0, 4, 7, 10]
    assert even_split(2, 3).tolist() == [0, 1, 2, 2]


@pytest.mark.mpi
def test_row_offsets(comm):
    off = row_offsets(comm.rank + 1, comm)
    n = comm.size
    assert off.tolist() == [0] + np.cumsum(np.arange(1, n + 1)).tolist()


@pytest.mark.mpi
def test_bcast_arrays(comm):
    src = (np.arange(12.0).reshape(3, 4).T, np.array([3, 1], dtype=np.int64), np.zeros((0, 2)))
    got = bcast_arrays(src if comm.rank == 0 else None, comm)
    assert len(got) == 3
    for a, b in zip(got, src):
        assert a.dtype == b.dtype and a.shape == b.shape and np.array_equal(a, b)


def test_progress_prints_on_rank0_only(capsys):
    import io
    buf = io.StringIO()
    bar = Progress(None, 20, "work", stream=buf)
    for _ in range(20):
        bar.update()
    lines = buf.getvalue().splitlines()
    assert lines[-1] == "work: 20/20 (100%)"
    assert 2 <= len(lines) <= 11


SCRIPT = r"""
import time
from mpi4py import MPI
from rom.parallel import abort_on_error, UserError
comm = MPI.COMM_WORLD
with abort_on_error(comm, prog="t"):
    if comm.rank == 1:
        raise UserError("bad input on rank 1")
    comm.bcast(None, root=1)     # rank 0 would wait here forever
"""


@pytest.mark.skipif(not MPIEXEC.exists(), reason="needs the venv's mpiexec")
def test_error_on_one_rank_aborts_all_promptly():
    t0 = time.perf_counter()
    proc = subprocess.run([str(MPIEXEC), "-n", "2", sys.executable, "-c", SCRIPT],
                          capture_output=True, text=True, timeout=120, cwd=ROOT)
    elapsed = time.perf_counter() - t0
    assert proc.returncode != 0
    assert "[rank 1] t: error: bad input on rank 1" in proc.stderr
    assert elapsed < 60


@pytest.mark.skipif(not MPIEXEC.exists(), reason="needs the venv's mpiexec")
def test_cli_case_error_printed_once(tmp_path):
    bad = tmp_path / "case.yaml"
    bad.write_text("name: x\nmesh: nowhere.vtu\nsnapshots: {store: s.h5}\n")
    proc = subprocess.run([str(MPIEXEC), "-n", "2", sys.executable, "-m", "rom.offline", str(bad)],
                          capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert proc.returncode == 2
    lines = [ln for ln in proc.stderr.splitlines() if "error" in ln]
    assert lines == [f"rom.offline: error: {bad}: mesh: file not found: {tmp_path / 'nowhere.vtu'}"]
    assert "Traceback" not in proc.stderr

"""Shared test fixtures.

Tests marked ``mpi`` are run three times by ``make test``: serially, and under
``mpiexec -n 2`` and ``-n 3`` (see tests/run_mpi.py). They take the communicator
from the ``comm`` fixture and must compare their distributed result with a serial
reference computed in the same test (gathered), so that rank-count independence
is asserted, not assumed.
"""
from __future__ import annotations

import numpy as np
import pytest
from mpi4py import MPI


@pytest.fixture
def comm() -> MPI.Comm:
    return MPI.COMM_WORLD


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(1234)


@pytest.fixture
def shared_tmp_path(tmp_path, comm):
    """A temporary directory that is the same on every rank (rank 0's tmp_path)."""
    path = comm.bcast(str(tmp_path) if comm.rank == 0 else None, root=0)
    from pathlib import Path
    return Path(path)


def pytest_configure(config):
    # Under mpiexec only rank 0 reports in full; other ranks print failures only.
    if MPI.COMM_WORLD.size > 1 and MPI.COMM_WORLD.rank > 0:
        config.option.verbose = -2
        config.option.reportchars = "f"

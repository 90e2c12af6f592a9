"""Run the whole test suite: serially, then the ``mpi``-marked tests under mpiexec -n 2 and -n 3,
then the scripts in mpi_examples/ under mpiexec -n 2. Called by ``make test``.

Every run has a time limit, so a deadlock in a distributed test fails the suite instead
of hanging it. Exit status 0 only if every run passed.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
MPIEXEC = shutil.which("mpiexec", path=str(BIN)) or shutil.which("mpiexec")
TIMEOUT = int(os.environ.get("ROM_TEST_TIMEOUT", "1200"))


def run(label: str, cmd: list[str], env: dict | None = None) -> tuple[str, bool, float]:
    print(f"\n=== {label}: {' '.join(cmd)}", flush=True)
    t0 = time.perf_counter()
    try:
        ok = subprocess.run(cmd, cwd=ROOT, timeout=TIMEOUT,
                            env={**os.environ, **(env or {})}).returncode == 0
    except subprocess.TimeoutExpired:
        print(f"=== {label}: TIMEOUT after {TIMEOUT} s (deadlock?)", flush=True)
        ok = False
    return label, ok, time.perf_counter() - t0


def main() -> int:
    if MPIEXEC is None:
        print("mpiexec not found (run `make test`, which installs MPICH into .venv)")
        return 1
    py = sys.executable
    pytest = [py, "-m", "pytest", "-p", "no:cacheprovider"]
    # one BLAS thread per process: the tests are small, and threaded BLAS on busy or
    # oversubscribed cores (MPI ranks) is many times slower
    mpi_env = {"OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"}
    results = [run("serial", pytest + ["tests"], mpi_env)]
    for n in (2, 3):
        results.append(run(f"mpi n={n}", [MPIEXEC, "-n", str(n)] + pytest +
                           ["-m", "mpi", "-q", "tests"], mpi_env))
    for script in sorted((ROOT / "mpi_examples").glob("*.py")):
        results.append(run(f"example {script.name} n=2",
                           [MPIEXEC, "-n", "2", py, str(script.relative_to(ROOT))], mpi_env))
    print("\n=== summary")
    for label, ok, dt in results:
        print(f"  {'PASS' if ok else 'FAIL'}  {label:<40s} {dt:7.1f} s")
    return 0 if all(ok for _, ok, _ in results) else 1


if __name__ == "__main__":
    sys.exit(main())

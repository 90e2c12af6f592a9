#!/usr/bin/env bash
# Create (or complete) the project virtual environment with the MPI + PETSc toolchain.
#
# Idempotent: every step checks first whether it is already done, so a second
# run with nothing changed takes seconds. Called by `make venv` (and hence by
# `make demo` / `make test`); can be run by hand: `bash tools/bootstrap.sh`.
#
# Environment:
#   VENV      virtual environment directory (default: .venv)
#   PYTHON    interpreter used to create it (default: python3, must be >= 3.11)
set -euo pipefail

VENV=${VENV:-.venv}
PYTHON=${PYTHON:-python3}
PETSC_VERSION=${PETSC_VERSION:-3.26.1}
# MPI on; CUDA, Fortran and X off (without these pip's PETSc build turns MPI off and tries CUDA)
export PETSC_CONFIGURE_OPTIONS="--with-mpi=1 --with-cuda=0 --with-fc=0 --with-fortran-bindings=0 \
  --with-x=0 --with-debugging=0 COPTFLAGS=-O2 CXXOPTFLAGS=-O2"
say() { printf '[bootstrap] %s\n' "$*"; }

# 1. A BLAS/LAPACK for PETSc (only needed to build PETSc).
have_blas() {
  ldconfig -p 2>/dev/null | grep -q 'libopenblas\.so ' && return 0
  dpkg -s libopenblas-dev >/dev/null 2>&1 && return 0
  return 1
}

# 2. The virtual environment, with mpicc of the pip MPICH first on PATH.
if [ ! -x "$VENV/bin/python" ]; then
  "$PYTHON" - <<'PY' || { echo "rom needs Python >= 3.11 (set PYTHON=/path/to/python3.11)" >&2; exit 1; }
import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)
PY
  say "creating $VENV"
  "$PYTHON" -m venv "$VENV"
  "$VENV/bin/python" -m pip install --quiet --upgrade pip
fi
export PATH="$PWD/$VENV/bin:$PATH"
PY="$VENV/bin/python"
pip_install() { "$PY" -m pip install --quiet --disable-pip-version-check "$@"; }
importable() { "$PY" -c "import $1" >/dev/null 2>&1; }

if ! [ -x "$VENV/bin/mpicc" ] || ! importable mpi4py || ! importable numpy; then
  say "installing MPICH, mpi4py, numpy and build tools"
  pip_install mpich mpi4py numpy cython setuptools wheel
fi

# 3. PETSc with MPI on and CUDA/Fortran/X off, then petsc4py linked against it.
if ! importable petsc4py.PETSc; then
  if ! have_blas; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
      say "installing libopenblas-dev (PETSc needs a BLAS/LAPACK)"
      DEBIAN_FRONTEND=noninteractive apt-get install -y -qq libopenblas-dev >/dev/null \
        || { apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq libopenblas-dev >/dev/null; }
    else
      echo "PETSc needs a BLAS/LAPACK. Install it, then rerun:" >&2
      echo "    sudo apt-get install libopenblas-dev      (Debian/Ubuntu)" >&2
      echo "    sudo dnf install openblas-devel           (Fedora/RHEL)" >&2
      exit 1
    fi
  fi
  say "building PETSc $PETSC_VERSION with MPI (first time ~6 min, then cached by pip)"
  pip_install "petsc==$PETSC_VERSION"
  # A PETSc wheel cached by pip from a build in another virtual environment keeps that
  # environment's absolute RUNPATH to libmpi: if it no longer resolves, build it afresh.
  libpetsc=$(ls "$VENV"/lib/python*/site-packages/petsc/lib/libpetsc.so.* 2>/dev/null | head -n 1)
  if [ -n "$libpetsc" ] && ldd "$libpetsc" | grep -q "not found"; then
    say "cached PETSc wheel does not link here; rebuilding it without the cache"
    pip_install --no-cache-dir --force-reinstall --no-deps "petsc==$PETSC_VERSION"
  fi
  say "building petsc4py $PETSC_VERSION (first time ~5 min, then cached by pip)"
  pip_install --no-build-isolation "petsc4py==$PETSC_VERSION"
  "$PY" - <<'PY'
from petsc4py import PETSc
from mpi4py import MPI
assert PETSc.COMM_WORLD.getSize() >= 1
print("[bootstrap] PETSc", ".".join(map(str, PETSc.Sys.getVersion())), "with", MPI.Get_library_version().splitlines()[0])
PY
fi

# 4. The project itself (editable) with its Python dependencies.
stamp="$VENV/.rom-installed"
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  say "installing rom (editable) with its dependencies"
  pip_install -e ".[test]"
  touch "$stamp"
fi
say "environment ready: $VENV"

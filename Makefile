# rom: two commands do everything.
#   make demo   installs what is missing, then runs the offline stage of the default case on 2 ranks
#   make test   installs what is missing, then runs the tests (serial, then MPI at 2 and 3 ranks)
# The first run builds PETSc (about 12 minutes); later runs take seconds.

VENV    ?= .venv
PYTHON  ?= python3
NP      ?= 2
CASE    ?= cases/plate/case.yaml
BIN      = $(VENV)/bin
STAMP    = $(VENV)/.rom-installed

.PHONY: demo test test-serial test-mpi examples venv clean help

help:
	@echo "make demo    - install (if needed) and run the default case: $(CASE) on $(NP) ranks"
	@echo "make test    - install (if needed) and run all tests (serial + mpiexec -n 2, -n 3)"
	@echo "make venv    - only create/complete the virtual environment $(VENV)"

venv: $(STAMP)

$(STAMP): pyproject.toml tools/bootstrap.sh
	VENV=$(VENV) PYTHON=$(PYTHON) bash tools/bootstrap.sh
	@touch $@

demo: $(STAMP)
	OPENBLAS_NUM_THREADS=1 $(BIN)/mpiexec -n $(NP) $(BIN)/python -m rom.offline $(CASE)

test: $(STAMP)
	$(BIN)/python tests/run_all.py

clean:
	rm -rf out .pytest_cache

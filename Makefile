# rom: two commands do everything.
#   make demo   installs what is missing, then runs the turbine-blade workflow on 2 ranks:
#               training snapshots (rom.fom), reduced model (rom.offline), held-out queries
#               against the full-order solver with a report (rom.study); a few minutes on
#               cases/blade/demo.yaml, the whole study with CASE=cases/blade/case.yaml
#   make test   installs what is missing, then runs the tests (serial, then MPI at 2 and 3 ranks)
# The first run builds PETSc (about 12 minutes); later runs take seconds.

VENV    ?= .venv
PYTHON  ?= python3
NP      ?= 2
CASE    ?= cases/blade/demo.yaml
QUERIES ?= 0
BIN      = $(VENV)/bin
STAMP    = $(VENV)/.rom-installed

.PHONY: demo test test-serial test-mpi examples venv clean help

help:
	@echo "make demo    - install (if needed) and run the workflow of $(CASE) on $(NP) ranks"
	@echo "               (QUERIES=$(QUERIES) held-out queries; QUERIES=0: all of them)"
	@echo "make test    - install (if needed) and run all tests (serial + mpiexec -n 2, -n 3)"
	@echo "make venv    - only create/complete the virtual environment $(VENV)"

venv: $(STAMP)

$(STAMP): pyproject.toml tools/bootstrap.sh
	VENV=$(VENV) PYTHON=$(PYTHON) bash tools/bootstrap.sh
	@touch $@

RUN = OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 $(BIN)/mpiexec -n $(NP) $(BIN)/python

demo: $(STAMP)
	$(RUN) -m rom.fom $(CASE) --overwrite
	$(RUN) -m rom.offline $(CASE)
	$(RUN) -m rom.study $(CASE) $(if $(filter 0,$(QUERIES)),,--limit $(QUERIES))

test: $(STAMP)
	$(BIN)/python tests/run_all.py

clean:
	rm -rf out .pytest_cache

"""The ``interp:`` case section and the offline call (rom.interp.config)."""
from __future__ import annotations

import h5py
import numpy as np
import pytest

from rom.config import CaseError
from rom.interp import load
from rom.interp.config import InterpConfig, build_problem, interp_config_from_dict, run_offline


def test_defaults_and_errors_name_the_key():
    assert interp_config_from_dict({}) == InterpConfig()
    with pytest.raises(CaseError, match=r"interp\.rb_tol: expected a value in \(0, 1\)"):
        interp_config_from_dict({"rb_tol": 2.0})
    with pytest.raises(CaseError, match="did you mean 'matrix_tol'"):
        interp_config_from_dict({"matrix_tols": 1e-8})
    with pytest.raises(CaseError, match="interp.estimator"):
        interp_config_from_dict({"estimator": "exact"}, source="case.yaml")
    assert interp_config_from_dict({"matrix_tol": "1e-8"}).matrix_tol == 1e-8   # YAML 1.1


@pytest.mark.mpi
def test_run_offline_writes_a_loadable_model(comm, shared_tmp_path):
    cfg = interp_config_from_dict({"cells": 8, "width": 0.5, "training_samples": 16,
                                   "rb_tol": 1e-4, "max_basis": 8, "validation_samples": 3})
    path = shared_tmp_path / "case.rom.h5"
    model = run_offline(cfg, path, comm=comm, case_hash="abc")
    eff = model.history["validation_effectivity"]
    assert np.all(eff >= 1.0) and np.all(eff <= 2.0)
    if comm.rank == 0:
        with h5py.File(path) as f:
            assert f.attrs["schema"] == "rom.interp" and f.attrs["case_hash"] == "abc"
            assert f["interp/basis"].shape == (49, model.n_basis)
        m = load(path, problem=build_problem(cfg).linear_problem())
        r = m.solve([0.5, 0.5])
        assert r.error_bound > 0 and r.field.shape == (49,)
    comm.Barrier()

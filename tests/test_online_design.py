"""Training design by the error indicator (rom.online.design, docs/online.md)."""
from __future__ import annotations

import h5py
import numpy as np
import pytest

pytest.importorskip("petsc4py")

from test_online_common import copy_case, store_from_rank0

import rom.fom.solver  # noqa: F401 - PETSc initialization is collective: every rank
from rom.config import load_case
from rom.online import OnlineConfig, build_reduced_model, load
from rom.online.design import parameter_box, propose, select
from rom.parallel import UserError

#: plate_creep's hot-spot family with its base temperature and amplitude as parameters
FORMULA = "T0 + A * exp(-((x - 0.03) / 0.01)**2) * minimum(t / 5, 1)"
CORNERS = [(800, 100), (800, 300), (950, 100), (950, 300)]


def parametric_case(dest):
    """cases/plate_creep with its four training loadings written as one formula with the
    parameters T0 and A (the same temperatures)."""
    case_file = copy_case(dest)
    text = case_file.read_text()
    start, end = text.index("  loadings:\n"), text.index("online:")
    rows = "".join(f'    - {{name: t{t0}_a{a}, temperature: {{formula: "{FORMULA}", '
                   f"parameters: {{T0: {t0}, A: {a}}}}}}}\n" for t0, a in CORNERS)
    case_file.write_text(text[:start] + "  loadings:\n" + rows + text[end:])
    return case_file


def test_select_takes_the_largest_indicators_apart():
    unit = np.array([[0.0, 0.0], [0.1, 0.0], [1.0, 1.0], [0.5, 0.5], [0.0, 1.0]])
    eta = np.array([5.0, 4.0, 3.0, np.inf, 1.0])
    np.testing.assert_array_equal(select(unit, eta, 3, 0.0), [3, 0, 1])
    # 1 is within 0.25 of 0: skipped for the next best far enough
    np.testing.assert_array_equal(select(unit, eta, 3, 0.25), [3, 0, 2])
    # too close to propose as many as asked: fewer
    np.testing.assert_array_equal(select(unit, eta, 5, 0.6), [3, 0, 2, 4])


def test_parameter_box_of_the_training_loadings(tmp_path):
    from rom.fom.run import load_fom_case
    fc = load_fom_case(parametric_case(tmp_path))
    names, lo, hi, template = parameter_box(fc.fom.loadings)
    assert names == ["A", "T0"]
    np.testing.assert_array_equal(lo, [100, 800])
    np.testing.assert_array_equal(hi, [300, 950])
    assert template.name == "t800_a100"
    with pytest.raises(UserError, match="no training loading with temperature.parameters"):
        parameter_box(load_fom_case(copy_case(tmp_path / "plain")).fom.loadings)


@pytest.mark.mpi
def test_scores_are_the_indicators_of_reduced_solves_at_any_rank_count(comm, shared_tmp_path):
    """The candidates' scores (spread over the ranks) equal the largest indicator of a
    reduced solve of each candidate on one rank; the proposal extends the case by the
    worst candidates."""
    from rom.fom.run import load_fom_case
    from rom.fom.setup import temperature_history
    case_file = store_from_rank0(shared_tmp_path, comm, parametric_case)
    build_reduced_model(load_case(case_file), comm, OnlineConfig(indicator_tol=5e-4))
    out = shared_tmp_path / "proposal.yaml"
    d = propose(case_file, out, candidates=5, add=2, seed=3, min_distance=0.0, comm=comm,
                progress=False)
    assert d.candidates.shape == (5, 2)
    assert np.all((d.candidates >= [100, 800]) & (d.candidates <= [300, 950]))
    np.testing.assert_array_equal(d.chosen, np.argsort(-d.indicator)[:2])
    if comm.rank == 0:
        fc = load_fom_case(case_file)
        model = load(shared_tmp_path / "out" / "plate_creep.rom.h5")
        grid = fc.loading.times
        times = np.linspace(grid.start, grid.stop, grid.steps + 1)
        for i in (d.chosen[0], int(np.argmin(d.indicator))):
            T = temperature_history({"formula": FORMULA, "parameters": dict(
                zip(d.names, map(float, d.candidates[i])))}, model.mesh, fc).array(times)
            eta = model.copy().solve(T, times).indicator.max()
            assert d.indicator[i] == pytest.approx(eta, rel=1e-10)
        with h5py.File(shared_tmp_path / "out" / "plate_creep.design.h5") as f:
            assert f.attrs["schema"] == "rom.online.design"
            np.testing.assert_array_equal(f["indicator"][...], d.indicator)
        prop = load_fom_case(out)
        assert [ld.name for ld in prop.fom.loadings][4:] == ["greedy0", "greedy1"]
        p = prop.fom.loadings[4].temperature.parameters
        np.testing.assert_allclose([p["A"], p["T0"]], d.candidates[d.chosen[0]], rtol=0)
        assert prop.fom.loadings[4].temperature.formula == FORMULA
    comm.barrier()


def test_bad_requests_say_what(tmp_path):
    case_file = parametric_case(tmp_path)
    with pytest.raises(UserError, match="next to"):
        propose(case_file, tmp_path / "elsewhere" / "p.yaml", progress=False)
    with pytest.raises(UserError, match="reduced model not found"):
        propose(case_file, tmp_path / "p.yaml", progress=False)
    with pytest.raises(UserError, match="--add"):
        propose(case_file, tmp_path / "p.yaml", add=0, progress=False)

"""The adaptive reduced model with the Chaboche law (cases/plate_cyclic at CI size: three
load cycles): the internal-variable basis with its per-unit scales, a training loading
reproduced, and a query outside the training repaired by enrichment."""
from __future__ import annotations

import shutil
from pathlib import Path

import h5py
import numpy as np
import pytest

pytest.importorskip("petsc4py")

from test_online_common import ROOT, errors, reference, run_fom

from rom.config import load_case
from rom.online import build_reduced_model, load
from rom.online.enrich import previous_state
from rom.online.solve import StepState

CASE = ROOT / "cases" / "plate_cyclic"
TIMES = np.linspace(0.0, 60.0, 37)
INSIDE = "875 + 200 * exp(-((x - 0.03) / 0.01)**2) * minimum(t / 5, 1)"
OUTSIDE = "900 + 250 * y / 0.01 * minimum(t / 5, 1) + 150 * exp(-((x - 0.005) / 0.008)**2)"
STRAIN, P, BACK = slice(0, 6), slice(6, 7), slice(7, 19)


def _copy(dest: Path) -> Path:
    dest.mkdir(parents=True, exist_ok=True)
    shutil.copy(ROOT / "cases/plate_creep/mesh.inp", dest / "mesh.inp")
    text = (CASE / "case.yaml").read_text().replace("../plate_creep/mesh.inp", "mesh.inp")
    (dest / "case.yaml").write_text(text.replace("../../out/plate_cyclic", "out"))
    return dest / "case.yaml"


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    case_file = _copy(tmp_path_factory.mktemp("plate_cyclic"))
    run_fom(case_file)
    case = load_case(case_file)
    return build_reduced_model(case, None), case


def _training_state(case, loading: int, step: int) -> np.ndarray:
    """The stored internal variables (n_qp, 19) of a training loading at a step (the
    store's layout, docs/snapshots.md)."""
    with h5py.File(case.snapshots.store, "r") as f:
        j = int(np.flatnonzero((f["snapshots/loading"][()] == loading)
                               & (f["snapshots/step"][()] == step))[0])
        n_qp = f["fields/p/values"].shape[0]
        return np.hstack([f[f"fields/{name}/values"][:, j].reshape(n_qp, -1)
                          for name in ("viscoplastic_strain", "p", "X1", "X2")])


def test_internal_variable_basis_scaled_per_unit_and_reconstructs_each_variable(built):
    path, case = built
    model = load(path)
    s = model.bases.psi_z_scale
    assert np.ptp(s[STRAIN]) == 0 and s[6] == s[0] and np.ptp(s[BACK]) == 0
    assert 1e8 < s[7] / s[0] < 1e12                   # Pa against strains
    for step in (10, 22, 34):                          # the three cycles
        z = _training_state(case, 3, step)
        st = StepState(0.0, np.zeros(model.n_modes), None, z[model.operator.points])
        _, zr = previous_state(model, st)
        for sl in (STRAIN, P, BACK):                   # every variable, whatever its unit
            assert np.linalg.norm(zr[:, sl] - z[:, sl]) <= 1e-3 * np.linalg.norm(z[:, sl])


def test_cyclic_query_repaired_by_enrichment(built):
    path, _ = built
    model = load(path)
    ref = reference(model, OUTSIDE, TIMES)
    plain = model.solve(OUTSIDE, TIMES)
    with np.errstate(divide="ignore", invalid="ignore"):
        eu0, ep0 = errors(plain, ref)
    assert ep0[1:].max() > 0.1 and plain.indicator[1:].max() > 1e-2  # wrong, and says so
    # the first step is elastic (p = 0: the residual of p is 0) but 1.7 % off on u: the
    # stress residual (online.stress_indicator_tol: 0.1) flags it
    assert plain.indicator[1] < 1e-9 and eu0[0] > 1e-2 and plain.stress_indicator[1] > 0.5
    enriched = model.solve(OUTSIDE, TIMES, enrich=True, tol=1e-4)
    with np.errstate(divide="ignore", invalid="ignore"):
        eu, ep = errors(enriched, ref)
    assert len(enriched.enrichments) >= 3 and enriched.enrichments[0]["step"] == 1
    assert eu.max() < 1e-2 and ep[1:].max() < 2e-2          # (p = 0 at step 1)
    p_cycle = [ref[i][1].max() for i in (11, 23, 35)]               # p grows every cycle
    assert p_cycle[0] < p_cycle[1] < p_cycle[2]


def test_study_reports_the_cycles_at_the_critical_point(built):
    """rom.study on the periodic case: the histories at the model's critical point (the
    largest p of the training) of both answers, cycle by cycle, within 2 % of the
    full-order stress range and p increment; the report's section and loop plot."""
    from rom.study import run_study
    path, case = built
    model = load(path)
    crit = model.meta["critical_point"]
    with h5py.File(case.snapshots.store, "r") as f:
        assert crit == int(np.argmax(f["fields/p/values"][()].max(axis=1)))
    assert crit in model.operator.imposed          # a reduced point: the law's own answer
    res = model.solve(INSIDE, TIMES)
    k = int(np.flatnonzero(model.operator.points == crit)[0])
    at = res.at_point(crit)
    assert at["p"][-1] == res.p_reduced[-1][k] > 0
    study = run_study(case.source_file, None, progress=False, limit=1)
    c = study.queries[0].cycles
    assert c["point"] == crit and len(c["hf"]) == 3
    for h, r in zip(c["hf"], c["rom"], strict=True):                 # the 3 cycles
        assert abs(r["stress_range"] - h["stress_range"]) <= 0.02 * h["stress_range"]
        assert abs(r["mean_stress"] - h["mean_stress"]) <= 0.02 * h["stress_range"]
        assert h["dp"] > 0 and abs(r["dp"] - h["dp"]) <= 0.02 * h["dp"]
    text = study.report.read_text()
    assert "## Cycles at the critical point" in text
    assert (study.report.parent / "cycles_inside.png").is_file()


def test_stress_residual_stays_low_inside_the_training_family(built):
    path, _ = built
    model = load(path)
    res = model.solve(INSIDE, TIMES)
    assert 0 < res.stress_indicator[1:].max() < 0.5 * model.meta["stress_indicator_tol"]


def test_study_flags_by_either_indicator(built):
    """The study's detection counts a query flagged by the stress residual too."""
    from rom.study import run_study
    _, case = built
    study = run_study(case.source_file, None, progress=False, enrich=False)
    assert study.stress_tol == 0.1
    outside = next(q for q in study.queries if q.name == "outside")
    assert outside.stress_indicator[0] > 0.5
    assert "and 0.1 on the stress residual" in study.report.read_text()


def test_trained_on_three_cycles_queried_over_ten(built):
    """The model of the first 3 cycles, queried over 10 with enrichment: per cycle the
    stress range, mean stress and p increment at the critical point within 2 % of the
    full-order answer, and fewer enrichments per cycle once past the training's cycles."""
    from mpi4py import MPI

    from rom.fom.run import load_fom_case
    from rom.fom.setup import loads_from_config
    from rom.fom.solver import MechanicalSolver, NewtonOptions
    from rom.online.solve import temperature_at_nodes
    from rom.study.cycles import cycle_table, principal_direction
    path, _ = built
    model = load(path)
    times = np.linspace(0.0, 200.0, 121)                   # 10 cycles of 20 s
    g = model.meta["critical_point"]
    res = model.solve(INSIDE, times, enrich=True)
    assert res.enrichments and g in model.operator.imposed  # kept through the enrichments
    fc = load_fom_case(model.meta["case_file"])
    solver = MechanicalSolver(model.mesh, model.law, loads_from_config(fc.loading, 0.0),
                              comm=MPI.COMM_SELF, petsc_options={"ksp_rtol": 1e-12},
                              newton=NewtonOptions(rtol=1e-10))
    row = int(np.flatnonzero(solver.elements.qp == g)[0])
    hist = [(np.zeros(6), np.zeros(6), 0.0)]
    solver.solve(times, lambda t: temperature_at_nodes(model, INSIDE, t, 0),
                 callback=lambda i, st: hist.append((st.stress[row].copy(),
                                                     st.strain[row].copy(),
                                                     float(st.internal[row, 6]))))
    solver.destroy()
    sig, eps, p = (np.array(v) for v in zip(*hist, strict=True))
    n = principal_direction(sig)
    rom = res.at_point(g)
    hf = cycle_table(times, 20.0, sig, eps, p, n)
    red = cycle_table(times, 20.0, rom["stress"], rom["strain"], rom["p"], n)
    assert len(hf) == 10 and p[-1] > 1e-4
    for h, r in zip(hf, red, strict=True):                 # the 10 cycles
        assert abs(r["stress_range"] - h["stress_range"]) <= 0.02 * h["stress_range"]
        assert abs(r["mean_stress"] - h["mean_stress"]) <= 0.02 * h["stress_range"]
        assert abs(r["dp"] - h["dp"]) <= 0.02 * h["dp"]
    steps = np.array([e["step"] for e in res.enrichments])
    assert np.sum(steps > 36) / 7 < np.sum(steps <= 36) / 3  # per cycle, after vs during


def test_study_times_queries_more_cycles_than_the_training(built):
    """``study.times`` sets the queries' time grid: the model of 3 cycles answers 5 in the
    study, and the report counts 5 cycles (the stored reference is keyed on the times)."""
    from rom.study import run_study
    _, case = built
    five = Path(case.source_file).with_name("five.yaml")
    five.write_text("extends: case.yaml\nstudy: {times: {start: 0, stop: 100, steps: 60}}\n")
    study = run_study(five, None, progress=False, limit=1, enrich=False)
    assert study.times[-1] == 100.0 and study.times.size == 61
    c = study.queries[0].cycles
    assert [h["cycle"] for h in c["hf"]] == [1, 2, 3, 4, 5]
    assert study.queries[0].temperature_seconds > 0
    assert "All 5 cycles as the user waits, the temperature field" in study.report.read_text()
    for h, r in zip(c["hf"], c["rom"], strict=True):
        assert abs(r["stress_range"] - h["stress_range"]) <= 0.02 * h["stress_range"]

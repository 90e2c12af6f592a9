"""Case study runner (docs/study.md) on cases/plate_creep at CI size."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("petsc4py")

from test_online_common import copy_case, run_fom, store_from_rank0

from rom.config import CaseError, load_case
from rom.online import OnlineConfig, build_reduced_model
from rom.parallel import UserError
from rom.study.config import StudyConfig
from rom.study.run import expand_queries, run_study


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    case_file = copy_case(tmp_path_factory.mktemp("study"))
    run_fom(case_file)
    build_reduced_model(load_case(case_file), None, OnlineConfig(indicator_tol=5e-4))
    from mpi4py import MPI
    return case_file, run_study(case_file, MPI.COMM_SELF, progress=False, limit=4)


def test_queries_inside_accurate_outside_flagged_and_repaired(study):
    _, res = study
    by = {q.name: q for q in res.queries}
    inside, outside = by["inside"], by["outside"]
    assert max(inside.max_err) < 1e-2                       # measured: ~1e-3
    assert np.max(inside.indicator) < res.tol
    assert np.max(outside.indicator) > res.tol              # flagged
    assert outside.max_err[1] > 2e-2                        # and really wrong (p)
    assert len(outside.enrichments) >= 1
    assert outside.err_p_enriched.max() < 0.5 * outside.max_err[1]
    assert inside.enrichments == []                         # nothing to repair
    for q in res.queries:
        assert q.hf_seconds.shape == q.rom_seconds.shape == (res.times.size - 1,)
        assert np.all(q.hf_seconds > 0) and np.all(q.rom_seconds > 0)


def test_errors_match_an_independent_reference(study):
    """The study's errors equal those computed directly from a full-order run."""
    from test_online_common import errors, reference

    from rom.online import load
    case_file, res = study
    q = next(q for q in res.queries if q.name == "inside")
    spec = next(s for s in expand_queries(load_case(case_file).study) if s.name == "inside")
    model = load(res.model_path)
    times = res.times
    ref = reference(model, spec.temperature.formula, times)
    r = model.solve(spec.temperature.formula, times)
    eu, ep = errors(r, ref)
    # errors() divides per step; the study divides by the largest norm over the history
    nu = max(np.linalg.norm(u) for u, _ in ref)
    scale = np.array([np.linalg.norm(u) for u, _ in ref]) / nu
    np.testing.assert_allclose(q.err_u, eu * scale, rtol=1e-6, atol=1e-12)
    assert ep.shape == q.err_p.shape


def test_report_and_paraview_files(study):
    import meshio
    _, res = study
    text = Path(res.report).read_text()
    assert "Summary by family" in text and "Spearman" in text
    for q in res.queries:
        assert f"| {q.name} |" in text
    # whole-query timing with enrichment: full-order steps and model updates included
    outside = next(q for q in res.queries if q.family == "outside")
    assert outside.enrichments
    assert outside.enriched_seconds > sum(e["seconds"] for e in outside.enrichments)
    assert outside.speedup_enriched == pytest.approx(np.sum(outside.hf_seconds)
                                                     / outside.enriched_seconds)
    assert outside.speedup_enriched < outside.speedup
    assert "speed-up with enrichment" in text
    files = [f for q in res.queries for f in q.files]
    assert files
    m = meshio.xdmf.TimeSeriesReader(str(files[0]))
    m.read_points_cells()
    _, pd, cd = m.read_data(0)
    pd = {k.split(" [")[0]: v for k, v in pd.items()}     # names carry their units
    cd = {k.split(" [")[0]: v for k, v in cd.items()}
    assert {"u_rom", "u_hf", "u_error", "temperature"} <= set(pd)
    assert {"p_rom", "p_hf", "von_mises_rom", "von_mises_hf"} <= set(cd)
    vm_rom, vm_hf = cd["von_mises_rom"][0], cd["von_mises_hf"][0]
    # the Gappy-POD stress of an inside query is close to the full-order one
    assert np.linalg.norm(vm_rom - vm_hf) < 0.05 * np.linalg.norm(vm_hf)
    # the enriched answer is written beside them; for the outside query it is closer
    out_file = next(f for q in res.queries if q.family == "outside" for f in q.files)
    m = meshio.xdmf.TimeSeriesReader(str(out_file))
    m.read_points_cells()
    _, pd, cd = m.read_data(m.num_steps - 1)
    pd = {k.split(" [")[0]: v for k, v in pd.items()}
    cd = {k.split(" [")[0]: v for k, v in cd.items()}
    assert {"u_enriched", "u_enriched_error"} <= set(pd)
    assert {"p_enriched", "von_mises_enriched"} <= set(cd)
    np.testing.assert_allclose(pd["u_enriched_error"], pd["u_enriched"] - pd["u_hf"],
                               atol=1e-15)
    assert (np.linalg.norm(pd["u_enriched_error"]) < 0.5 * np.linalg.norm(pd["u_error"]))
    assert "u_enriched" in text


def test_a_study_stopped_midway_keeps_its_report(study, monkeypatch):
    """The report is rewritten after every query: a failure at the second query leaves
    the first one's report, marked partial."""
    from mpi4py import MPI

    from rom.study import run as run_mod
    case_file, full = study
    calls = []
    original = run_mod._HF.run

    def failing(self, *args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise RuntimeError("full-order solver lost")
        return original(self, *args, **kwargs)

    monkeypatch.setattr(run_mod._HF, "run", failing)
    report = Path(full.report)
    before = report.read_text()
    report.unlink()
    with pytest.raises(RuntimeError, match="solver lost"):
        run_study(case_file, MPI.COMM_SELF, progress=False, limit=3, recompute=True)
    text = report.read_text()
    report.write_text(before)                 # the module's study keeps its report
    assert "**partial**: 1 of 3 queries answered" in text
    assert f"| {full.queries[0].name} |" in text and f"| {full.queries[1].name} |" not in text


def test_full_order_answers_are_stored_and_reused(study, monkeypatch, capsys):
    """A second study reuses the stored full-order answers (no full-order step) and gets
    the same errors; a stored answer whose key differs is recomputed; the key follows the
    material and the query."""
    import dataclasses

    import h5py
    from mpi4py import MPI

    from rom.fom.run import load_fom_case
    from rom.study import run as run_mod
    from rom.study.references import reference_key
    case_file, full = study
    report = Path(full.report)
    before = report.read_text()
    calls = []
    original = run_mod._HF.run

    def counting(self, *args, **kwargs):
        calls.append(1)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(run_mod._HF, "run", counting)
    again = run_study(case_file, MPI.COMM_SELF, progress=False, limit=2, enrich=False)
    assert calls == []
    for a, b in zip(again.queries, full.queries[:2]):
        assert a.hf_reused and not b.hf_reused
        np.testing.assert_allclose(a.err_u, b.err_u, rtol=1e-10, atol=1e-15)
        np.testing.assert_allclose(a.err_p, b.err_p, rtol=1e-10, atol=1e-15)
    path = report.parent / "references" / f"{again.case_name}.{full.queries[0].name}.h5"
    with h5py.File(path, "r") as f:                  # the timings are those stored
        np.testing.assert_array_equal(again.queries[0].hf_seconds, f["seconds"][...])
    assert "full-order answers of 2 of 2 queries reused" in report.read_text()
    # a stored answer for other settings is recomputed, with a message naming it
    with h5py.File(path, "r+") as f:
        f.attrs["key"] = f.attrs["key"].replace('"scale": 1.0', '"scale": 2.0')
    capsys.readouterr()
    third = run_study(case_file, MPI.COMM_SELF, progress=False, limit=1, enrich=False)
    report.write_text(before)
    assert calls == [1] and not third.queries[0].hf_reused
    assert "stored for other settings; recomputed" in capsys.readouterr().out
    np.testing.assert_allclose(third.queries[0].err_p, full.queries[0].err_p, rtol=1e-6)
    # the key follows what the answer depends on
    fc = load_fom_case(case_file)
    q = expand_queries(fc.case.study)[0]
    times = full.times
    k = reference_key(fc, q, times, "m")
    assert k == reference_key(load_fom_case(case_file), q, times, "m")
    hot = dataclasses.replace(q, scale=1.5)
    assert reference_key(fc, hot, times, "m") != k
    assert reference_key(fc, q, times, "other mesh") != k
    assert reference_key(fc, q, times[:-1], "m") != k
    warm = dataclasses.replace(fc, material=dataclasses.replace(fc.material, T_ref=fc.material.T_ref + 10.0))
    assert reference_key(warm, q, times, "m") != k
    # ... and not on how often rom.fom checkpoints its store
    rare = dataclasses.replace(fc, fom=dataclasses.replace(fc.fom, checkpoint=None))
    assert reference_key(rare, q, times, "m") == k


def test_sampled_queries_are_deterministic_and_named():
    from rom.config import _Ctx
    ctx = _Ctx("<test>", Path.cwd())
    cfg = ctx.build(StudyConfig, {"sample": [
        {"n": 3, "seed": 4, "prefix": "s", "temperature": {"formula": "T0 + 0 * x"},
         "parameters": {"T0": [800, 900]}}]}, "study")
    a, b = expand_queries(cfg), expand_queries(cfg)
    assert [q.name for q in a] == ["s0", "s1", "s2"]
    vals = [q.temperature.parameters["T0"] for q in a]
    assert vals == [q.temperature.parameters["T0"] for q in b]
    assert all(800 <= v <= 900 for v in vals) and len(set(vals)) == 3
    dup = ctx.build(StudyConfig, {"queries": [{"name": "a"}, {"name": "a"}]}, "study")
    with pytest.raises(UserError, match="duplicate query names: a"):
        expand_queries(dup)


def test_study_needs_online_and_fom(tmp_path):
    (tmp_path / "c.yaml").write_text("name: c\nsnapshots: {store: s.h5}\nmesh: m.vtu\n"
                                     "study: {queries: [{name: a}]}\n")
    (tmp_path / "m.vtu").write_text("")
    with pytest.raises(CaseError, match="study: needs 'online'"):
        load_case(tmp_path / "c.yaml")


def test_detection_counts_and_separating_tolerance():
    """Missed detections, false alarms, and the interval of tolerances that would have
    flagged exactly the queries above target, on hand-made per-step histories."""
    from types import SimpleNamespace

    from rom.study.report import detection
    from rom.study.run import QueryResult

    def q(name, eu, ep, eta):
        one = np.ones(3)
        return QueryResult(name, "inside", eu * one, ep * one, eta * one, one, one)

    study = SimpleNamespace(error_tol=(0.01, 0.02), tol=1e-3, queries=[
        q("good", 1e-3, 5e-3, 2e-3),        # within targets, flagged: false alarm
        q("fine", 1e-4, 1e-3, 5e-4),        # within targets, not flagged
        q("bad_p", 1e-3, 3e-2, 8e-3),       # above the p target, flagged
        q("bad_u", 2e-2, 1e-2, 9e-4)])      # above the u target, not flagged: missed
    det = detection(study)
    assert det["exceeds"].tolist() == [False, False, True, True]
    assert det["missed"] == ["bad_u"] and det["false_alarms"] == ["good"]
    assert det["separating"] == (2e-3, 9e-4)             # no tolerance separates them
    study.queries.pop()
    assert detection(study)["separating"] == (2e-3, 8e-3)


@pytest.mark.mpi
def test_study_by_rows_equals_one_process(comm, shared_tmp_path):
    """rom.study on the ranks (model loaded by rows, full-order answers kept by rows, the
    errors reduced over the ranks, enrichment by rows) gives the errors of one process;
    the stored references are the same files whatever the rank count."""
    from mpi4py import MPI

    from rom.study.references import SCHEMA  # noqa: F401 - the module the test is about
    case_file = store_from_rank0(shared_tmp_path, comm)
    build_reduced_model(load_case(case_file), comm, OnlineConfig(indicator_tol=5e-4))
    par = run_study(case_file, comm, progress=False, limit=2, report=False, recompute=True)
    ser = None
    if comm.rank == 0:          # one process, the references just stored by the ranks
        ser = run_study(case_file, MPI.COMM_SELF, progress=False, limit=2, report=False)
        assert all(q.hf_reused for q in ser.queries)
    ser = comm.bcast(None if ser is None else [(q.name, q.err_u, q.err_p, q.err_u_enriched,
                                                q.err_p_enriched) for q in ser.queries])
    for q, (name, eu, ep, eue, epe) in zip(par.queries, ser):
        assert q.name == name
        np.testing.assert_allclose(q.err_u, eu, rtol=1e-7, atol=1e-12)
        np.testing.assert_allclose(q.err_p, ep, rtol=1e-7, atol=1e-12)
        np.testing.assert_allclose(q.err_u_enriched, eue, rtol=1e-5, atol=1e-10)
        np.testing.assert_allclose(q.err_p_enriched, epe, rtol=1e-5, atol=1e-10)

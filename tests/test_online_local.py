"""Local reduced models online (rom.online.local): one adaptive reduced model per cluster,
selection by temperature sensors, switching with the error indicator as safety net, on a
CI-size plate_creep case with two regimes (docs/local-bases.md, "Local reduced models
online"). The MPI test runs under mpiexec -n 2 and -n 3 too."""
from __future__ import annotations

import io

import h5py
import numpy as np
import pytest
from mpi4py import MPI

pytest.importorskip("petsc4py")
from test_online_common import copy_case, errors, reference, run_fom

import rom
import rom.fom.solver  # PETSc initialization is collective: every rank
from rom.config import load_case
from rom.online import LocalReducedModels, build_local_models, load, load_local
from rom.parallel import UserError

TIMES = np.linspace(0.0, 20.0, 9)
TOL = 1e-3
HOT_F = "{T0} + {A} * exp(-((x - 0.03) / 0.01)**2) * minimum(t / 5, 1)"
GRAD_F = "{T0} + {A} * y / 0.01 * minimum(t / 5, 1)"
HOT = HOT_F.format(T0=875, A=250)                  # inside regime 1 (hot spot near the notch)
GRAD = GRAD_F.format(T0=875, A=250)                # inside regime 2 (through-thickness gradient)
# starts in the hot-spot regime, jumps to the gradient regime after t = 10 s
MOVE = f"where(t <= 10, {HOT}, 875 + 250 * y / 0.01)"
TRANSITION = int(np.searchsorted(TIMES, 10.0, side="right"))     # first step after t = 10 s


def two_regime_case(dest, *, local: bool = True):
    """plate_creep with a training family of two regimes (4 hot spots at x = 0.03, 4
    through-thickness gradients; T0 in {800, 950}, amplitude in {200, 300}), a clustering
    section (k = 2, simulations, Grassmann) and ``online.local``."""
    case_file = copy_case(dest)
    text = case_file.read_text().split("# held-out")[0]
    head, _ = text.split("  loadings:\n")
    loadings = [f'    - {{name: {n}{T0}_{A}, temperature: {{formula: "{f.format(T0=T0, A=A)}"}}}}'
                for n, f in (("h", HOT_F), ("g", GRAD_F)) for T0 in (800, 950)
                for A in (200, 300)]
    online = f"online: {{indicator_tol: {TOL}, local: {str(local).lower()}}}"
    case_file.write_text(head + "  loadings:\n" + "\n".join(loadings) + "\n" + online + "\n"
                         "clustering: {k: 2, dissimilarity: grassmann, level: simulations}\n")
    return case_file


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    from rom.offline import run
    case_file = two_regime_case(tmp_path_factory.mktemp("online_local"))
    run_fom(case_file)
    res = run(load_case(case_file), MPI.COMM_SELF, progress=False, out=io.StringIO())
    model = load(res.online)
    refs = {name: reference(model, f, TIMES) for name, f in
            (("hot", HOT), ("grad", GRAD), ("move", MOVE))}
    return res, refs


def _regime_models(models: LocalReducedModels) -> tuple[int, int]:
    """(model of the hot-spot loadings 0-3, model of the gradient loadings 4-7)."""
    return int(models.column_labels[0]), int(models.column_labels[-1])


def test_offline_stage_writes_one_self_describing_file(built):
    res = built[0]
    assert res.online_local.name == "plate_creep.local.rom.h5"
    models = rom.load(res.online_local)                 # rom.load recognizes the file
    assert isinstance(models, LocalReducedModels) and models.k == 2
    glob = load(res.online)
    with h5py.File(res.online_local, "r") as f:
        assert f.attrs["schema"] == "rom.online.local_models" and int(f.attrs["k"]) == 2
        assert set(f) == {"model_0", "model_1", "selector", "transfer"}
        assert f["model_0/full/phi"].attrs["units"] == "m"
        assert f["selector/features"].attrs["units"] == "K"
        assert f["transfer/phi_1_0"].shape == (models.n_modes[1], models.n_modes[0])
    # the clusters are the two regimes: loadings 0-3 (hot spot), 4-7 (gradient)
    hot, grad = _regime_models(models)
    assert hot != grad and models.labels.tolist() == [hot] * 4 + [grad] * 4
    assert np.array_equal(models.column_labels, np.repeat(models.labels, 8))
    # each local model is smaller than the global model, at the same tolerances
    assert max(models.n_modes) < glob.n_modes and max(models.n_points) < glob.n_points
    for (b, a), C in models.cross.items():          # the stored cross projections
        np.testing.assert_allclose(C, models.models[b].bases.phi.local.T
                                   @ models.models[a].bases.phi.local, atol=1e-12)
    assert 1 <= models.sensors.size <= 16 and models.features.shape == (64, models.sensors.size)
    assert models.models[0].meta["n_training_snapshots"] == 32


def test_selection_follows_the_regime(built):
    models = load_local(built[0].online_local)
    hot, grad = _regime_models(models)
    rng = np.random.default_rng(0)
    for _ in range(10):  # loop over random queries, inside and around the training ranges
        T0, A = rng.uniform(780, 970), rng.uniform(150, 350)
        assert models.select(HOT_F.format(T0=T0, A=A), TIMES) == hot
        assert models.select(GRAD_F.format(T0=T0, A=A), TIMES) == grad
    # an array temperature selects at the sensors only, like the formula
    x = models.models[0].mesh.points
    T = np.array([875 + 250 * x[:, 1] / 0.01 * min(t / 5, 1) for t in TIMES])
    assert models.select(T, TIMES) == grad
    np.testing.assert_allclose(models.sensor_temperature(T, TIMES),
                               models.sensor_temperature(GRAD, TIMES), rtol=1e-12)


@pytest.mark.parametrize("query", ["hot", "grad"])
def test_inside_each_regime_local_and_global_below_one_percent(built, query):
    res, refs = built
    models, glob = load_local(res.online_local), load(res.online)
    f = {"hot": HOT, "grad": GRAD}[query]
    out = models.solve(f, TIMES)
    want = _regime_models(models)[query == "grad"]
    assert np.all(out.model_index == want) and not out.switches and not out.flagged
    assert out.indicator[1:].max() < TOL
    eu, ep = errors(out, refs[query])
    gu, gp = errors(glob.solve(f, TIMES), refs[query])
    assert max(eu.max(), ep.max()) < 1e-2 and max(gu.max(), gp.max()) < 1e-2, (eu, ep, gu, gp)
    # cost independent of N: no model read the mesh, one model tried per step
    assert all(not m.mesh_loaded for m in models.models)
    assert np.all(out.tries[1:] == 1)


def test_moving_query_is_flagged_then_switches_with_enrichment(built):
    res, refs = built
    models = load_local(res.online_local)
    hot, grad = _regime_models(models)
    # without enrichment: the hot-spot model answers until the jump, then no model meets
    # the tolerance (neither knows the other regime's creep history): every later step
    # is flagged, the steps before are accurate
    plain = models.solve(MOVE, TIMES)
    eu, ep = errors(plain, refs["move"])
    assert np.all(plain.model_index[:TRANSITION] == hot)
    assert plain.flagged == list(range(TRANSITION, TIMES.size))
    assert max(eu[:TRANSITION - 1].max(), ep[:TRANSITION - 1].max()) < 1e-2
    assert all(len(plain.candidates[i]) == 2 for i in plain.flagged)     # both were tried
    assert all(not m.mesh_loaded for m in models.models)
    # with enrichment: at the jump the high-fidelity step enriches the model the sensors
    # rank first (the gradient model), which answers from then on; all steps below 1 %
    out = models.solve(MOVE, TIMES, enrich=True)
    eu, ep = errors(out, refs["move"])
    assert max(eu.max(), ep.max()) < 1e-2, (eu, ep)
    assert out.switches[0]["step"] == TRANSITION and out.switches[0]["from"] == hot
    assert out.switches[0]["to"] == grad and out.switches[0]["enriched"]
    assert np.all(out.model_index[TRANSITION:] == grad)
    assert 1 <= len(out.enrichments) <= 3 and out.enrichments[0]["model"] == grad
    assert models.models[hot].n_modes == load_local(res.online_local).models[hot].n_modes


def test_save_load_round_trip_bit_identical(built, tmp_path):
    res = built[0]
    models = load_local(res.online_local)
    again = load_local(models.save(tmp_path / "copy.local.rom.h5"))
    for f in (HOT, MOVE):
        a, b = models.solve(f, TIMES), again.solve(f, TIMES)
        assert all(np.array_equal(x, y) for x, y in zip(a.coordinates, b.coordinates))
        assert np.array_equal(a.indicator, b.indicator)
        assert np.array_equal(a.model_index, b.model_index)
    # an enriched set of models keeps its state through save/load
    models.solve(MOVE, TIMES, enrich=True)
    back = load_local(models.save(tmp_path / "enriched.local.rom.h5"))
    assert back.n_modes == models.n_modes
    a, b = models.solve(MOVE, TIMES), back.solve(MOVE, TIMES)
    assert all(np.array_equal(x, y) for x, y in zip(a.coordinates, b.coordinates))
    assert np.array_equal(a.model_index, b.model_index)


def test_forced_model_and_transfer(built):
    models = load_local(built[0].online_local)
    hot, grad = _regime_models(models)
    forced = models.solve(HOT, TIMES[:3], model=grad, switch=False)
    assert np.all(forced.model_index == grad) and forced.indicator[1:].min() > TOL
    # the safety net recovers from a wrong start: switches to the hot-spot model
    rescued = models.solve(HOT, TIMES[:3], model=grad)
    assert rescued.switches[0] == {**rescued.switches[0], "step": 1, "from": grad, "to": hot}
    # a transfer keeps the coordinates that both bases span (O(n_a n_b + q r))
    st = models.solve(HOT, TIMES[:3]).coordinates[-1]
    from rom.online.solve import StepState
    A = models.models[hot]
    z = np.tile(A.law.initial_state(1), (A.n_points, 1))
    moved = models.transfer(StepState(2.5, st, A.operator.eps @ st, z), hot, grad)
    assert moved.q.shape == (models.n_modes[grad],) and moved.z.shape[0] == models.n_points[grad]
    np.testing.assert_allclose(moved.z, np.tile(A.law.initial_state(1), (moved.z.shape[0], 1)),
                               atol=1e-12)


def test_user_errors(built, tmp_path):
    models = load_local(built[0].online_local)
    with pytest.raises(UserError, match="model must be in"):
        models.solve(HOT, TIMES, model=5)
    with pytest.raises(UserError, match="not a local reduced-models file"):
        load_local(built[0].online)
    with pytest.raises(UserError, match="not found"):
        load_local(tmp_path / "missing.h5")
    models.models[0].meta["indicator"] = "accumulated"
    with pytest.raises(UserError, match="accumulated is not implemented"):
        models.solve(HOT, TIMES)
    import dataclasses

    from rom.offline import run
    case = load_case(two_regime_case(tmp_path / "c"))
    with pytest.raises(UserError, match="online.local: needs a 'clustering:'"):
        run(dataclasses.replace(case, clustering=None), MPI.COMM_SELF, progress=False,
            out=io.StringIO())
    with pytest.raises(UserError, match="clustering: required"):
        build_local_models(dataclasses.replace(case, clustering=None))


def test_online_local_config_keys(tmp_path):
    from rom.config import CaseError, _Ctx
    from rom.online import OnlineConfig
    ctx = _Ctx("case.yaml", tmp_path)
    cfg = ctx.build(OnlineConfig, {"local": True, "sensors": 4, "local_model": "l.h5"}, "online")
    assert cfg.local and cfg.sensors == 4 and cfg.local_model == tmp_path / "l.h5"
    with pytest.raises(CaseError, match="online.sensors"):
        ctx.build(OnlineConfig, {"sensors": 0}, "online")


@pytest.mark.mpi
def test_selection_independent_of_rank_count(comm, shared_tmp_path):
    case_file = shared_tmp_path / "case.yaml"
    if comm.rank == 0:
        two_regime_case(shared_tmp_path)
        run_fom(case_file)                   # one serial snapshot store for every rank count
    comm.barrier()
    par = build_local_models(load_case(case_file), comm,
                             path=shared_tmp_path / f"par{comm.size}.local.rom.h5")
    ser = None
    if comm.rank == 0:
        ser = build_local_models(load_case(case_file), None,
                                 path=shared_tmp_path / "ser.local.rom.h5")
    ser = comm.bcast(ser, root=0)
    a, b = load_local(par), load_local(ser)
    for name in ("labels", "medoids", "column_labels", "reference", "sensors"):
        assert np.array_equal(getattr(a, name), getattr(b, name)), name
    np.testing.assert_allclose(a.features, b.features, rtol=1e-13)
    assert a.n_modes == b.n_modes
    assert all(np.array_equal(x.operator.points, y.operator.points)
               for x, y in zip(a.models, b.models))
    rng = np.random.default_rng(1)
    queries = [f.format(T0=rng.uniform(780, 970), A=rng.uniform(150, 350))
               for f in (HOT_F, GRAD_F) for _ in range(4)] + [MOVE]
    for f in queries:  # loop over queries: same choices, same answers to round-off
        assert a.select(f, TIMES) == b.select(f, TIMES)
        ra, rb = a.solve(f, TIMES), b.solve(f, TIMES)
        assert np.array_equal(ra.model_index, rb.model_index) and ra.flagged == rb.flagged
        for i in range(TIMES.size):
            u = rb.displacement(i)
            assert np.linalg.norm(ra.displacement(i) - u) <= 1e-8 * max(np.linalg.norm(u),
                                                                         1e-300)
    mine = np.concatenate([a.sensors, a.labels, [a.select(MOVE, TIMES)]])
    assert all(np.array_equal(mine, other) for other in comm.allgather(mine))
    # by rows of comm, with the enrichments on the ranks: the one-process answer
    one = load_local(par).solve(MOVE, TIMES, enrich=True, tol=1e-4)
    rows = load_local(par, comm)
    res = rows.solve(MOVE, TIMES, enrich=True, tol=1e-4, comm=comm)
    assert [e["step"] for e in res.enrichments] == [e["step"] for e in one.enrichments]
    assert np.array_equal(res.model_index, one.model_index) and len(res.enrichments) >= 1
    n0, n1 = rows.models[0].bases.partition.node_range
    for i in range(1, TIMES.size):
        u = one.displacement(i)
        np.testing.assert_allclose(res.displacement(i), u[n0:n1], rtol=0,
                                   atol=1e-8 * np.abs(u).max())

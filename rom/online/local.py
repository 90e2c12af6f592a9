"""Local reduced models online: one adaptive reduced model per cluster of snapshots, a
cheap selector, and switching between the models during a solve (docs/local-bases.md,
"Local reduced models online").

Offline (:func:`build_local_models`, collective): the displacement snapshots are
clustered (:func:`rom.clustering.build_local_bases`, the case's ``clustering:`` section),
and :func:`rom.online.build.build_distributed` builds one :class:`ReducedModel` per
cluster from that cluster's snapshot columns (overlap included): its own POD bases, ECM
points, Q-DEIM points and indicator data. Selector data: temperature *sensors* (the
nodes chosen by EIM on the temperature snapshots, :func:`rom.hyper.eim`), the
temperature at the sensors of every training snapshot (the features) and their
clusters; and the cross projections ``phi_b^T phi_a`` (n_b, n_a) between the
displacement bases, so that a switch costs O(n_a n_b + q r), not O(N).

Online (:meth:`LocalReducedModels.solve`): the model of the nearest training snapshot
(features at the first step) starts; when its error indicator exceeds the tolerance at a
step, the other models are tried in the selector's ranking for that step (state
transferred by the cross projection and a Gappy-POD of the internal variables), the
first below the tolerance is kept; otherwise the current model is enriched
(``enrich=True``) or the one with the smallest indicator goes on and the step is flagged.

File layout (schema ``rom.online.local_models`` version 1, one HDF5 file):

``/model_<c>``  (c = 0..k-1) the layout of a reduced-model file (:mod:`.model`):
    groups ``full``, ``reduced``; attrs ``meta``, ``material``; plus ``columns`` (the
    training snapshot columns of the model)
``/selector``   ``sensors`` (s,) node ids; ``sensor_coords`` (s, 3) [m]; ``features``
    (m, s) temperature at the sensors of every training snapshot [K]; ``column_labels``
    (m,) cluster of every snapshot; ``reference`` (r,) the snapshot columns that
    represent the clusters; ``labels``, ``medoids`` (clustered items); attrs ``metric``,
    ``representatives``, ``level``, ``dissimilarity``
``/transfer``   ``phi_<b>_<a>`` (n_b, n_a) = ``phi_b^T phi_a`` for every a != b
root attrs      provenance, ``k``, ``meta`` (JSON)
"""
from __future__ import annotations

import json
import time
from pathlib import Path

import h5py
import numpy as np
from mpi4py import MPI

from ..clustering import LocalBasisSelector, build_local_bases
from ..fom.mesh import FEMesh
from ..fom.setup import material_from_config
from ..hyper import eim
from ..io.atomic import atomic_h5, check_schema, stamp_provenance
from ..io.mesh import read_mesh
from ..io.snapshots import SnapshotStore
from ..linalg.rowblocks import entity_rows, rows_at
from ..parallel import UserError, allreduce_sum, as_comm, raise_if_failed, rank0_print
from . import checks as _checks
from .build import Partition, TrainingRows, build_distributed, read_blocks
from .config import OnlineConfig
from .model import ReducedModel, read_layout, write_layout
from .result import OnlineResult
from .solve import (
    ReducedDivergence,
    StepState,
    _check_inputs,
    _eval,
    indicator,
    initial_state,
    march,
    reduced_step,
    temperature_at_nodes,
    temperature_at_points,
)

__all__ = ["SCHEMA", "SCHEMA_VERSION", "LocalOnlineResult", "LocalReducedModels",
           "build_local_models", "load", "load_local"]

SCHEMA, SCHEMA_VERSION = "rom.online.local_models", 1
#: relative sup-norm tolerance of the EIM that picks the temperature sensors
SENSOR_TOL = 1e-3


# ---------------------------------------------------------------- the models
class LocalReducedModels:
    """k local reduced models, their selector and the cross projections between them.

    Build with :func:`build_local_models`, read with :func:`load_local` (or
    ``rom.load``, which recognizes the file).

    Attributes
    ----------
    models : k :class:`ReducedModel`
    sensors : (s,) node ids of the temperature sensors
    sensor_coords : (s, 3) their coordinates [m]
    features : (m, s) temperature at the sensors of every training snapshot [K]
    column_labels : (m,) cluster (model) of every training snapshot
    reference : (r,) training snapshot columns representing the clusters
    metric : feature metric of the selector (``"euclidean"`` or ``"sine"``)
    meta : dict (clustering parameters, labels, medoids, ...)
    cross : dict (b, a) -> ``phi_b^T phi_a`` (n_b, n_a)
    """

    def __init__(self, models: list[ReducedModel], selector: dict, cross: dict, meta: dict):
        self.models = models
        self.sensors = np.asarray(selector["sensors"], np.int64)
        self.sensor_coords = np.asarray(selector["sensor_coords"], float)
        self.features = np.asarray(selector["features"], float)
        self.column_labels = np.asarray(selector["column_labels"], np.int64)
        self.reference = np.asarray(selector["reference"], np.int64)
        self.labels = np.asarray(selector["labels"], np.int64)
        self.medoids = np.asarray(selector["medoids"], np.int64)
        self.metric = str(selector["metric"])
        self.representatives = str(selector["representatives"])
        self.cross = dict(cross)
        self.meta = meta
        self._zmap: dict = {}
        self._selector = LocalBasisSelector(self.features[self.reference],
                                            self.column_labels[self.reference],
                                            metric=self.metric, representatives="all")

    # ---------------------------------------------------------------- sizes
    @property
    def k(self) -> int:
        return len(self.models)

    @property
    def n_modes(self) -> list[int]:
        return [m.n_modes for m in self.models]

    @property
    def n_points(self) -> list[int]:
        return [m.n_points for m in self.models]

    @property
    def selector(self) -> LocalBasisSelector:
        """The :class:`rom.clustering.LocalBasisSelector` on the sensor features."""
        return self._selector

    # ---------------------------------------------------------------- selection
    def sensor_temperature(self, temperature, times) -> np.ndarray:
        """Temperature at the sensors (n_times, s) [K]: O(s n_times), never the mesh.

        ``temperature`` as in :meth:`solve` (array (n_times, n_nodes), callable, formula).
        """
        temperature, times = _check_inputs(self.models[0], temperature, times)
        if isinstance(temperature, np.ndarray):
            return temperature[:, self.sensors]
        x = self.sensor_coords
        return np.stack([_eval(temperature, x[:, 0], x[:, 1], x[:, 2], float(t))
                         for t in times])  # loop over time steps

    def select(self, temperature, times, step: int = 1) -> int:
        """The model the selector chooses for a loading: nearest cluster of the sensor
        features at ``times[step]`` (default the first step solved)."""
        return int(self.selector.select(self.sensor_temperature(temperature, times)[step]))

    # ---------------------------------------------------------------- state transfer
    def _cross(self, b: int, a: int) -> np.ndarray:
        if (b, a) not in self.cross:      # after an enrichment: O(N n_a n_b), as the enrichment
            pb, pa = self.models[b].bases.phi, self.models[a].bases.phi
            self.cross[(b, a)] = allreduce_sum(pb.local.T @ pa.local, pb.comm)
        return self.cross[(b, a)]

    def _z_map(self, b: int, a: int):
        """(rows of b's points in psi_z_a, Gappy pseudo-inverse on a's points, exact copies)."""
        A, B = self.models[a], self.models[b]
        key = (b, a, A.meta["n_enrichments"], B.meta["n_enrichments"], A.n_points, B.n_points)
        if self._zmap.get((b, a), (None,))[0] != key:
            ns = A.meta["n_state"]
            pa, pb = A.operator.points, B.operator.points
            ra = entity_rows(pa, ns)
            rb = entity_rows(pb, ns)
            # Gappy-POD: z at b's points = psi_z_a[b] c, c = argmin |psi_z_a[a] c - z_a|
            # (in the basis' units: W = S psi_z_a[b] pinv(psi_z_a[a]) S^-1, S the scales)
            W = A.bases.psi_z.rows(rb) @ np.linalg.pinv(
                A.bases.psi_z.rows(ra))                     # (q_b ns, q_a ns), O(q r^2)
            if A.bases.psi_z_scale is not None:
                s = np.tile(A.bases.psi_z_scale, len(pb)), np.tile(A.bases.psi_z_scale, len(pa))
                W = s[0][:, None] * W / s[1][None, :]
            _, ib, ia = np.intersect1d(pb, pa, assume_unique=True, return_indices=True)
            self._zmap[(b, a)] = (key, W, ib, ia)
        return self._zmap[(b, a)][1:]

    def transfer(self, st: StepState, a: int, b: int) -> StepState:
        """The reduced state ``st`` of model ``a`` expressed in model ``b`` (O(n_a n_b + q r)):
        coordinates by the cross projection ``phi_b^T phi_a``, internal variables at b's
        reduced points by Gappy-POD with a's internal-variable basis (exact at the points
        the models share), strains from b's modes."""
        B = self.models[b]
        q = self._cross(b, a) @ st.q
        W, ib, ia = self._z_map(b, a)
        z = (W @ st.z.ravel()).reshape(B.n_points, -1)
        z[ib] = st.z[ia]
        return StepState(st.time, q, B.operator.eps @ q, z)

    # ---------------------------------------------------------------- online
    def solve(self, temperature, times, *, scale: float = 1.0, enrich: bool = False,
              tol: float | None = None, comm: MPI.Comm | None = None,
              max_enrichments: int = 20, model: int | None = None,
              switch: bool = True) -> LocalOnlineResult:
        """Reduced solve with the local models over ``times`` (``times[0]``: virgin state).

        Parameters
        ----------
        temperature, times, scale, comm, max_enrichments : as
            :meth:`ReducedModel.solve` (temperature evaluated at the reduced points of the
            model in use and at the sensors only)
        enrich : when no model meets the tolerance at a step, take one high-fidelity step
            from the current model's state and enrich (in place, as
            :meth:`ReducedModel.solve`) the model the sensors rank first at that step (the
            current model while the loading stays in its cluster; with ``switch=False``
            always the current one), which answers the step; without ``enrich``, the model
            with the smallest indicator goes on and the step is flagged
        tol : indicator tolerance (default: the models' ``indicator_tol``)
        model : start with this model instead of the selector's choice (the cluster of the
            nearest training snapshot, in sensor temperatures at ``times[1]``)
        switch : try the other models when the indicator exceeds ``tol`` (the safety net)

        Returns
        -------
        :class:`LocalOnlineResult`: per step ``model_index``, ``indicator``, ``tries``;
        ``switches`` (step, from, to, indicators), ``flagged`` steps, ``enrichments``.
        """
        first = self.models[0]
        if any(m.meta.get("indicator", "p") != "p" for m in self.models):
            raise UserError("local reduced models: online.indicator: accumulated is not "
                            "implemented (the models switch and their points differ); use p")
        temperature, times = _check_inputs(first, temperature, times, tol)
        tol = first.meta["indicator_tol"] if tol is None else float(tol)
        hf_comm = first.check_comm(comm, "enrichment") if enrich else first.comm
        t0 = time.perf_counter()
        F = self.sensor_temperature(temperature, times)
        cur = int(self.selector.select(F[1])) if model is None else int(model)
        if not 0 <= cur < self.k:
            raise UserError(f"model must be in [0, {self.k}), got {model}")
        st = initial_state(self.models[cur].operator, times[0])
        res = LocalOnlineResult(self, times, cur)
        res.selection_seconds = time.perf_counter() - t0
        res.record_model(cur, st, 0, 0.0, None, 0, 0.0)
        current = [cur]

        def step(i: int, st: StepState):
            cur = current[0]
            t = float(times[i])
            t0 = time.perf_counter()
            tried = {cur: _attempt(self.models[cur], st, temperature, t, i, scale)}
            if switch and not tried[cur][2] <= tol:
                for b in self.selector.ranking(F[i]):  # loop over the other models
                    b = int(b)
                    if b in tried:
                        continue
                    tried[b] = _attempt(self.models[b], self.transfer(st, cur, b),
                                        temperature, t, i, scale)
                    if tried[b][2] <= tol:
                        break
            ok = [b for b, r in tried.items() if r[2] <= tol]
            best = ok[0] if ok else min(tried, key=lambda b: tried[b][2])
            dt_red = time.perf_counter() - t0
            need = enrich and not ok
            if enrich and hf_comm.size > 1:
                need = hf_comm.bcast(need, root=0)   # one decision for the collective HF step
            if need:
                # the model the features rank first at this step gets the snapshot (the
                # current one while the loading stays in its cluster)
                b = int(self.selector.ranking(F[i])[0]) if switch else cur
                pred = tried[cur][0]
                new, its, eta, c = self._enrich(cur, b, st, temperature, t, i, scale,
                                                hf_comm, res, tried[cur][2], max_enrichments,
                                                guess=None if pred is None else pred.q)
                if b != cur:
                    res.switches.append({"step": i, "from": cur, "to": b, "enriched": True,
                                         "indicators": {j: r[2] for j, r in tried.items()}})
                    cur = b
            else:
                new, its, eta, c = tried[best]
                if new is None:
                    raise ReducedDivergence(f"reduced Newton did not converge at t = {t:g} s "
                                            f"with any of the {len(tried)} model(s) tried")
                if best != cur:
                    res.switches.append({"step": i, "from": cur, "to": best, "enriched": False,
                                         "indicators": {b: r[2] for b, r in tried.items()}})
                    cur = best
                if not ok:
                    res.flagged.append(i)
            res.tries[i] = len(tried)
            res.candidates[i] = {b: float(r[2]) for b, r in tried.items()}
            return new, (cur, its, eta, c, dt_red)

        def record(i: int, new: StepState, info) -> None:
            current[0] = info[0]
            res.record_model(*info[:1], new, *info[1:4], i, info[4])

        march(times, st, step, record)
        return res

    def _share_mesh(self) -> None:
        """All models read the same mesh and share the high-fidelity solvers (enrichment)."""
        first = next((m for m in self.models if m.mesh_loaded), self.models[0])
        for m in self.models:  # loop over models
            if m is not first:
                m.share_mesh_with(first)

    def _enrich(self, a: int, b: int, st: StepState, temperature, t: float, i: int,
                scale: float, comm: MPI.Comm, res, eta_before: float, max_enrichments: int,
                guess: np.ndarray | None = None):
        """One high-fidelity step from the state ``st`` of model ``a`` (reconstructed with
        a's bases); the snapshot enriches model ``b`` (= a: as :meth:`ReducedModel.solve`).
        ``guess``: a's reduced coordinates at ``t`` (its rejected prediction), where the
        high-fidelity Newton starts."""
        if len(res.enrichments) >= max_enrichments:
            raise ReducedDivergence(f"more than {max_enrichments} enrichments in one solve: "
                                    "the local reduced models cannot follow this loading")
        from .enrich import enrich_step, enrichment_event
        self._share_mesh()
        A, B = self.models[a], self.models[b]
        t1 = time.perf_counter()
        T_nodes = temperature_at_nodes(A, temperature, t, i)
        # the state was computed with A; the high-fidelity snapshot enriches B
        new = enrich_step(B, st, T_nodes, t, scale, comm, source=A, guess=guess)
        eta, c = indicator(B.operator, new.z)
        for j in range(self.k):  # phi_b changed: its cross projections are recomputed
            self.cross.pop((b, j), None)
            self.cross.pop((j, b), None)
        res.enrichments.append({"model": b, "from": a, **enrichment_event(
            B, i, eta_before, time.perf_counter() - t1)})
        return new, -1, eta, c

    # ---------------------------------------------------------------- I/O
    @property
    def comm(self) -> MPI.Comm:
        """The communicator the models' bases are split over."""
        return self.models[0].comm

    def save(self, path: str | Path, *, comm: MPI.Comm | None = None) -> Path:
        """Write everything to one HDF5 file (atomic; collective over the models'
        communicator, rank 0 writes)."""
        comm = self.models[0].check_comm(comm, "save")
        path = Path(path)
        for b in range(self.k):
            for a in range(self.k):
                if a != b:
                    self._cross(b, a)
        with atomic_h5(path, comm=comm) as f:
            if f is not None:
                _stamp(f, self.k, self.meta, comm.size)
            for c, m in enumerate(self.models):  # loop over models
                g = None if f is None else f.create_group(f"model_{c}")
                write_layout(g, m.operator, m.bases, m.meta, m.material_json, comm)
                if g is not None:
                    g.attrs["columns"] = np.asarray(self.meta["columns"][c], np.int64)
            if f is not None:
                _write_selector(f, self._selector_data())
                _write_transfer(f, self.cross)
        return path

    def _selector_data(self) -> dict:
        return {"sensors": self.sensors, "sensor_coords": self.sensor_coords,
                "features": self.features, "column_labels": self.column_labels,
                "reference": self.reference, "labels": self.labels, "medoids": self.medoids,
                "metric": self.metric, "representatives": self.representatives,
                "level": self.meta["level"], "dissimilarity": self.meta["dissimilarity"]}

    @classmethod
    def load(cls, path: str | Path, comm: MPI.Comm | None = None) -> LocalReducedModels:
        """Read a file written by :func:`build_local_models` or :meth:`save` (the bases
        by rows of ``comm``, read when first used, as :meth:`ReducedModel.load`)."""
        path = Path(path)
        if not path.is_file():
            raise UserError(f"local reduced models file {path} not found")
        with _checks.open_checked(path) as f:    # whole file checked (rom/online/checks.py)
            check_schema(f, path, SCHEMA, SCHEMA_VERSION, "a local reduced-models file")
            k = int(f.attrs["k"])
            models = []
            for c in range(k):  # loop over models
                g = f[f"model_{c}"]
                models.append(ReducedModel(*read_layout(g, path, comm)))
            s = f["selector"]
            sel = {n: s[n][()] for n in s}
            sel.update({n: str(s.attrs[n]) for n in ("metric", "representatives")})
            cross = {tuple(int(v) for v in n.split("_")[1:]): f["transfer"][n][()]
                     for n in f["transfer"]}
            meta = json.loads(f.attrs["meta"])
        return cls(models, sel, cross, meta)


def load_local(path: str | Path, comm: MPI.Comm | None = None) -> LocalReducedModels:
    """Read a local reduced-models file: ``models = rom.online.load_local(path)`` (one
    process) or ``load_local(path, comm)`` (each rank its rows of the bases)."""
    return LocalReducedModels.load(path, comm)


def load(path: str | Path, comm: MPI.Comm | None = None) -> ReducedModel | LocalReducedModels:
    """Read a reduced-model file (``rom.load``): a :class:`ReducedModel`, or
    :class:`LocalReducedModels` when the file holds local models; the full-size arrays
    by rows of ``comm`` (``None``: one process), read when first used."""
    p = Path(path)
    if p.is_file():
        try:
            with h5py.File(p, "r") as f:
                local = f.attrs.get("schema") == SCHEMA
        except OSError:
            local = False
        if local:
            return LocalReducedModels.load(p, comm)
    return ReducedModel.load(p, comm)


def _attempt(model: ReducedModel, st: StepState, temperature, t: float, i: int, scale: float):
    """One reduced step of ``model`` from ``st``: (state, iterations, indicator, coefficients);
    (None, -1, inf, None) if the reduced Newton fails."""
    op = model.operator
    T = temperature_at_points(op, temperature, t, i)
    try:
        new, its = reduced_step(op, st, T, t, scale)
    except ReducedDivergence:
        return None, -1, np.inf, None
    eta, c = indicator(op, new.z)
    return new, its, eta, c


class LocalOnlineResult(OnlineResult):
    """:class:`OnlineResult` of a solve with local models (fields on demand use the model
    that answered each step).

    Extra attributes
    ----------------
    model_index : (n_times,) model that answered each step (step 0: the selector's choice)
    switches : list of dicts ``step``, ``from``, ``to``, ``enriched`` (the new model was
        enriched at that step), ``indicators`` (model -> indicator of every model tried)
    flagged : steps where no model met the tolerance (without enrichment)
    tries : (n_times,) number of models tried per step
    candidates : per step, model -> indicator of every model tried
    selection_seconds : time of the initial selection (sensor temperatures, distances)
    """

    def __init__(self, models: LocalReducedModels, times: np.ndarray, first: int):
        super().__init__(models.models[first], times)
        self.models = models
        self.model_index = np.full(self.times.size, -1, np.int64)
        self.switches: list[dict] = []
        self.flagged: list[int] = []
        self.tries = np.zeros(self.times.size, np.int64)
        self.candidates: list[dict] = [{} for _ in range(self.times.size)]
        self.selection_seconds = 0.0

    def record_model(self, c: int, st, its, eta, coef, i, seconds) -> None:
        self.model = self.models.models[c]
        self.model_index[i] = c
        self.record(st, its, eta, coef, i, seconds)


# ---------------------------------------------------------------- file pieces (rank 0)
def _stamp(f, k: int, meta: dict, ranks: int) -> None:
    stamp_provenance(f, schema=SCHEMA, schema_version=SCHEMA_VERSION, writer="rom.online.local",
                     writer_ranks=ranks)
    f.attrs["k"] = int(k)
    f.attrs["meta"] = json.dumps(meta, sort_keys=True)


def _write_selector(f, sel: dict) -> None:
    s = f.create_group("selector")
    for n in ("sensors", "sensor_coords", "features", "column_labels", "reference", "labels",
              "medoids"):
        s.create_dataset(n, data=sel[n])
    s["sensor_coords"].attrs["units"] = "m"
    s["features"].attrs["units"] = "K"
    for n in ("metric", "representatives", "level", "dissimilarity"):
        s.attrs[n] = sel[n]


def _write_transfer(f, cross: dict) -> None:
    t = f.create_group("transfer")
    for (b, a), C in sorted(cross.items()):
        t.create_dataset(f"phi_{b}_{a}", data=C)


# ---------------------------------------------------------------- offline build
def _read_temperature(store: SnapshotStore, mesh: FEMesh, part: Partition) -> np.ndarray:
    f = store.fields.get("temperature")
    if f is None or (f.kind, f.n_entities, f.n_components) != ("nodal", mesh.n_nodes, 1):
        raise UserError(f"{store.path}: local reduced models need the nodal 'temperature' "
                        "snapshots (written by python -m rom.fom) to place the sensors")
    n0, n1 = part.node_range
    return store.read("temperature", rows=(n0, n1))


def build_local_models(case, comm: MPI.Comm | None = None, config: OnlineConfig | None = None,
                       *, clustering=None, path: str | Path | None = None,
                       metric: str = "euclidean", representatives: str = "all") -> Path:
    """Offline stage of the local reduced models (collective; see the module doc).

    Parameters
    ----------
    case : :class:`rom.config.Case` with ``mesh``, ``snapshots.store``, ``material``,
        ``loading``, ``clustering`` (k, dissimilarity, level, overlap, seed) and optionally
        ``online`` (tolerances, ``sensors``)
    comm : communicator (``None``: serial); the selection does not depend on its size
    config : overrides ``case.online``
    clustering : a :class:`rom.config.ClusteringConfig` overriding ``case.clustering``
    path : output file (default ``online.local_model`` or
        ``<output.directory>/<name>.local.rom.h5``)
    metric : feature metric of the selector, ``"euclidean"`` (default) or ``"sine"``
    representatives : ``"all"`` (default): a cluster is represented by the features of
        all its training snapshots (nearest-neighbour selection); ``"medoids"``: by the
        snapshots of its medoid (the medoid simulation's at ``level: simulations``)

    Returns
    -------
    the path of the written file
    """
    comm = as_comm(comm)
    cfg = config or getattr(case, "online", None) or OnlineConfig()
    cl = clustering or getattr(case, "clustering", None)
    where = getattr(case, "source_file", None) or "case"
    if cl is None:
        raise UserError(f"{where}: clustering: required by the local reduced models "
                        "(online.local: true)")
    for key in ("material", "loading", "snapshots", "mesh"):
        if getattr(case, key, None) is None:
            raise UserError(f"{where}: {key}: required by the local reduced models")
    if representatives not in ("all", "medoids"):
        raise ValueError(f"representatives must be 'all' or 'medoids', got {representatives!r}")
    law = material_from_config(case.material)
    mesh_file = str(Path(case.mesh).resolve())
    mesh = FEMesh.from_meshio(read_mesh(mesh_file), source=mesh_file)
    part = Partition.of(mesh, comm.size, comm.rank)
    with SnapshotStore.open(case.snapshots.store, comm=comm) as store:
        msg = None
        try:
            tr = read_blocks(store, law, mesh, part)
            U, S, Z = tr.U, tr.S, tr.Z
            T = _read_temperature(store, mesh, part)
            table = store.snapshot_table()
        except UserError as exc:
            msg = str(exc)
        raise_if_failed(msg, comm, UserError)
    m = U.shape[1]
    if not 1 <= cl.k <= m:
        raise UserError(f"{where}: clustering.k: {cl.k} clusters for {m} snapshots")
    # 1. clusters of the displacement snapshots (node rows of this rank)
    groups = table["loading"] if cl.level == "simulations" else None
    lb = build_local_bases(U, comm=comm, k=cl.k, dissimilarity=cl.dissimilarity,
                           level=cl.level, groups=groups, rtol=cfg.displacement_rtol,
                           overlap=cl.overlap, seed=cl.seed)
    # 2. sensors: EIM on the temperature snapshots, features of every training snapshot
    sensors = np.asarray(eim(T, tol=SENSOR_TOL, max_terms=cfg.sensors, comm=comm).indices,
                         np.int64)
    features = rows_at(T, part.nodes, sensors, comm).T                    # (m, s) [K]
    if cl.level == "simulations":
        members = [np.flatnonzero(groups == g) for g in lb.group_ids]
    else:
        members = [np.array([j]) for j in range(m)]
    reference = np.arange(m) if representatives == "all" else \
        np.sort(np.concatenate([members[i] for i in lb.medoids]))
    selector = {"sensors": sensors, "sensor_coords": mesh.points[sensors],
                "features": features, "column_labels": lb.column_labels,
                "reference": reference, "labels": lb.labels, "medoids": lb.medoids,
                "metric": metric, "representatives": representatives, "level": cl.level,
                "dissimilarity": cl.dissimilarity}
    LocalBasisSelector(features[reference], lb.column_labels[reference], metric=metric,
                       representatives="all")                           # validates
    meta = {"k": int(cl.k), "level": cl.level, "dissimilarity": cl.dissimilarity,
            "overlap": float(cl.overlap), "seed": int(cl.seed),
            "columns": [c.tolist() for c in lb.columns], "n_training_snapshots": m,
            "case_file": str(Path(case.source_file or "").resolve()), "mesh_file": mesh_file,
            "sensor_tol": SENSOR_TOL, "max_sensors": int(cfg.sensors)}
    if path is None:
        path = cfg.local_model or Path(case.output.directory) / f"{case.name}.local.rom.h5"
    path = Path(path)
    if comm.rank == 0:
        path.parent.mkdir(parents=True, exist_ok=True)
    # 3. one reduced model per cluster, written as it is built; cross projections
    phis, sizes = [], []
    with atomic_h5(path, comm=comm) as f:
        if f is not None:
            _stamp(f, cl.k, meta, comm.size)
        for c, cols in enumerate(lb.columns):  # loop over clusters
            rows = TrainingRows(U[:, cols], S[cols], Z[cols])
            built = build_distributed(mesh, case.material, case.loading, rows, cfg, part, comm,
                                      case_file=meta["case_file"], mesh_file=mesh_file)
            g = None if f is None else f.create_group(f"model_{c}")
            write_layout(g, built.operator, built.bases, built.meta, built.material_json, comm)
            if g is not None:
                g.attrs["columns"] = np.asarray(cols, np.int64)
            phis.append(built.bases.phi.local)
            sizes.append((built.n_modes, built.n_points))
        cross = {(b, a): allreduce_sum(phis[b].T @ phis[a], comm)
                 for b in range(cl.k) for a in range(cl.k) if a != b}
        if f is not None:
            _write_selector(f, selector)
            _write_transfer(f, cross)
    rank0_print(comm, f"rom.online: wrote {path} ({cl.k} local models: modes "
                      f"{[s[0] for s in sizes]}, reduced points {[s[1] for s in sizes]}; "
                      f"{sensors.size} temperature sensors; built on {comm.size} rank(s))")
    return path



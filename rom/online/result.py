"""The result of a reduced solve: reduced coordinates, fields on demand, indicator, timings."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ..io.mesh import write_time_series
from ..linalg.distributed import gather_rows
from ..linalg.rowblocks import entity_rows

__all__ = ["OnlineResult", "cell_means"]


def cell_means(mesh, values: np.ndarray) -> list[np.ndarray]:
    """Mean over each element's integration points of ``values`` (n_qp,) (global point
    order): one array per element block, as meshio's cell data."""
    out, start = [], 0
    for b in mesh.blocks:  # loop over element blocks
        nq = b.etype.n_qp
        out.append(values[start:start + len(b.ids) * nq].reshape(-1, nq).mean(axis=1))
        start += len(b.ids) * nq
    return out


class OnlineResult:
    """Time history of a reduced solve.

    Fields on the mesh are computed on demand from the reduced coordinates and the model's
    full-size bases, each rank its rows (:class:`~rom.online.model.FullBases`): with one
    process, the whole field.

    Attributes
    ----------
    times : (n_times,) [s]
    coordinates : list of (n_modes at that step,) reduced coordinates
    indicator : (n_times,) Gappy-POD relative residual of p at the reduced points (0 at t0)
    newton_iterations : (n_times,) reduced Newton iterations (-1: diverged, repaired)
    step_seconds : (n_times,) wall time of the reduced step (temperature, Newton, indicator)
    enrichments : list of dicts (``step``, ``indicator_before``, ``seconds``, ``n_modes``,
        ``n_points``, ``ecm_error``, and the split of ``seconds``:
        ``full_order_step_seconds``, ``bases_seconds``, ``ecm_seconds``), one per
        high-fidelity step
    """

    def __init__(self, model, times: np.ndarray):
        self.model, self.times = model, np.asarray(times, float)
        self.coordinates: list[np.ndarray] = []
        self.indicator = np.zeros(self.times.size)
        #: the stress residual at the reduced points per step (``online.stress_indicator_tol``;
        #: zeros when the model does not use it)
        self.stress_indicator = np.zeros(self.times.size)
        self.newton_iterations = np.zeros(self.times.size, np.int64)
        self.step_seconds = np.zeros(self.times.size)
        self.enrichments: list[dict] = []
        self._bases: list = []
        self._dual: list = []
        self.p_reduced: list[np.ndarray] = []
        self._stress: list = []

    def record(self, st, its: int, eta: float, c, i: int, seconds: float) -> None:
        m = self.model
        self.coordinates.append(st.q.copy())
        # the bases of the step, not copies: an enrichment makes new ones (appending
        # columns shares the training block), so holding them costs no memory until then
        self._bases.append(m.bases)
        self._dual.append(c)
        self.p_reduced.append(st.z[:, m.operator.p_column].copy())
        sig = st.extra.get("stress")
        self._stress.append(None if sig is None else (m.operator.points, np.array(sig)))
        self.indicator[i], self.newton_iterations[i], self.step_seconds[i] = eta, its, seconds

    @property
    def n_steps(self) -> int:
        return self.times.size - 1

    def displacement(self, i: int) -> np.ndarray:
        """Nodal displacement (n_local_nodes, 3) [m] at step ``i``: this rank's nodes of the
        model's partition (all nodes on one process); O(N n / P), no communication."""
        return self._bases[i].phi.dot(self.coordinates[i]).reshape(-1, 3)

    def p(self, i: int) -> np.ndarray:
        """Cumulated viscoplastic strain (n_local_qp,) at this rank's points by Gappy-POD,
        step ``i``."""
        psi, c = self._bases[i].psi_p, self._dual[i]
        return np.zeros(psi.n_local) if c is None else psi.dot(c)

    def _stress_fit(self, i: int) -> np.ndarray | None:
        """Gappy-POD coefficients of the stress basis of step ``i`` fitted to the stresses
        at the reduced points (None before any stress); collective."""
        if self._stress[i] is None:
            return None
        pts, sig = self._stress[i]
        rows = entity_rows(pts, 6)
        return np.linalg.lstsq(self._bases[i].sigma.rows(rows), sig.ravel(), rcond=None)[0]

    def stress(self, i: int) -> np.ndarray:
        """Stress (n_local_qp, 6) [Pa] at this rank's points at step ``i``, by Gappy-POD of
        the stress basis from the stresses at the reduced points (O(N s / P); collective
        over the model's communicator)."""
        sigma, c = self._bases[i].sigma, self._stress_fit(i)
        return np.zeros((sigma.n_local // 6, 6)) if c is None else sigma.dot(c).reshape(-1, 6)

    def at_point(self, point: int) -> dict[str, np.ndarray]:
        """Histories at the global integration point ``point`` over the times: ``stress``
        (n_times, 6) [Pa] and ``p`` (n_times,), the reduced model's own values where the
        point is a reduced point of the step (the law integrated there; the critical point
        of a periodic loading always is, :func:`~rom.online.build.monitored_points`), else
        by Gappy-POD of the stress and p bases from the reduced points (O(q s) per step,
        no full-size product); ``strain`` (n_times, 6) (engineering shears) from the
        strains of the displacement modes at the point (:func:`~rom.online.points.
        point_data`, once per basis). Step 0 is the virgin state. Collective over the
        model's communicator."""
        from .points import point_data
        at = np.array([int(point)])
        eps = {}                                  # mode strains (6, n) per displacement basis
        out = {"stress": np.zeros((self.times.size, 6)), "strain": np.zeros((self.times.size, 6)),
               "p": np.zeros(self.times.size)}
        for i in range(1, self.times.size):      # steps
            B = self._bases[i]
            if id(B.phi) not in eps:
                eps[id(B.phi)] = point_data(self.model.mesh, at, B.phi)["eps"][0]
            out["strain"][i] = eps[id(B.phi)] @ self.coordinates[i]
            own = None if self._stress[i] is None else \
                np.flatnonzero(self._stress[i][0] == at[0])
            if own is not None and own.size:     # a reduced point: the law's own answer
                out["stress"][i] = self._stress[i][1][own[0]]
                out["p"][i] = self.p_reduced[i][own[0]]
                continue
            if self._dual[i] is not None:
                out["p"][i] = (B.psi_p.rows(at) @ self._dual[i]).item()
            c = self._stress_fit(i)
            if c is not None:
                out["stress"][i] = B.sigma.rows(entity_rows(at, 6)) @ c
        return out

    def write(self, path: str | Path) -> Path | None:
        """Displacement (nodes) and p (cell means) at every step to XDMF for ParaView
        (collective over the model's communicator: the rows are gathered on rank 0, which
        writes; returns the path there, None elsewhere)."""
        m = self.model
        comm = m.comm
        disp = [gather_rows(self.displacement(i), comm, root=0) for i in range(self.times.size)]
        ps = [gather_rows(self.p(i), comm, root=0) for i in range(self.times.size)]
        if comm.rank != 0:
            return None
        cells = [{"p": cell_means(m.mesh, p)} for p in ps]
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        return write_time_series(path, m.meshio_mesh(), self.times,
                                 [{"displacement": u} for u in disp],
                                 cell_data_per_step=cells, units={"displacement": "m"})

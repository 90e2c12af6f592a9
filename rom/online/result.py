"""The result of a reduced solve: reduced coordinates, fields on demand, indicator, timings."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ..io.mesh import write_time_series
from .model import block_dot, block_rows, n_columns

__all__ = ["OnlineResult"]


class OnlineResult:
    """Time history of a reduced solve.

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
        self.newton_iterations = np.zeros(self.times.size, np.int64)
        self.step_seconds = np.zeros(self.times.size)
        self.enrichments: list[dict] = []
        self._phi: list[np.ndarray] = []
        self._dual: list = []
        self.p_reduced: list[np.ndarray] = []
        self._stress: list = []

    def record(self, st, its: int, eta: float, c, i: int, seconds: float) -> None:
        m = self.model
        self.coordinates.append(st.q.copy())
        self._phi.append(m.full["phi"])
        self._dual.append((m.full["psi_p"], c))
        self.p_reduced.append(st.z[:, m.meta["p_column"]].copy())
        sig = st.extra.get("stress")
        # the model and the width of its stress basis, not the basis: enrichment only
        # appends columns to it (the stress snapshot), so step i's basis is a prefix of the
        # model's current one; holding each generation cost 1.8 GB per enrichment at 10^5 dofs
        self._stress.append(None if sig is None else
                            (m, n_columns(m.full, "sigma"), m.reduced["points"], np.array(sig)))
        self.indicator[i], self.newton_iterations[i], self.step_seconds[i] = eta, its, seconds

    @property
    def n_steps(self) -> int:
        return self.times.size - 1

    def displacement(self, i: int) -> np.ndarray:
        """Nodal displacement (n_nodes, 3) [m] at step ``i`` (O(N n))."""
        return (self._phi[i] @ self.coordinates[i]).reshape(-1, 3)

    def p(self, i: int) -> np.ndarray:
        """Cumulated viscoplastic strain (n_qp,) at every point by Gappy-POD, step ``i``."""
        psi, c = self._dual[i]
        return np.zeros(psi.shape[0]) if c is None else psi @ c

    def stress(self, i: int) -> np.ndarray:
        """Stress (n_qp, 6) [Pa] at every point at step ``i``, by Gappy-POD of the stress
        basis from the stresses at the reduced points (O(N s))."""
        if self._stress[i] is None:
            return np.zeros((self.model.meta["n_qp"], 6))
        model, k, pts, sig = self._stress[i]
        rows = (pts[:, None] * 6 + np.arange(6)).ravel()
        c = np.linalg.lstsq(block_rows(model.full, "sigma", rows, k), sig.ravel(), rcond=None)[0]
        return block_dot(model.full, "sigma", c).reshape(-1, 6)

    def write(self, path: str | Path) -> Path:
        """Displacement (nodes) and p (cell means) at every step to XDMF for ParaView."""
        m = self.model
        mio = m.meshio_mesh()
        cells = []
        for i in range(self.times.size):  # loop over steps
            p, out, start = self.p(i), [], 0
            for b in m.mesh.blocks:  # loop over element blocks
                nq = b.etype.n_qp
                out.append(p[start:start + len(b.ids) * nq].reshape(-1, nq).mean(axis=1))
                start += len(b.ids) * nq
            cells.append({"p": out})
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        return write_time_series(path, mio, self.times,
                                 [{"displacement": self.displacement(i)}
                                  for i in range(self.times.size)],
                                 cell_data_per_step=cells, units={"displacement": "m"})

"""Enrichment: one high-fidelity step (PETSc) from the reconstructed state, incremental
basis update, warm-started ECM (docs/online.md, DESIGN.md sections 3 and 7).

Every O(N) step works on the model's row blocks (:class:`~rom.online.model.FullBases`):
the previous state is reconstructed by rows; the full-order solver's fields move between
PETSc's ownership and the model's rows with one ``Alltoallv`` each
(:func:`~rom.linalg.rowblocks.fetch_rows`, :func:`~rom.linalg.rowblocks.send_to_owners`);
the bases are updated with a communicator (Brand's incremental SVD, Gram-Schmidt with one
``Allreduce`` per projection); Q-DEIM and the ECM run on each rank's points. Only the
reduced data (at the q points) is replicated.
"""
from __future__ import annotations

import contextlib
import dataclasses
import time
import warnings

import numpy as np
from mpi4py import MPI

from ..hyper import ecm_fields, qdeim
from ..linalg import IncrementalSVD
from ..linalg.distributed import gather_rows
from ..linalg.rowblocks import RowBlocks, entity_rows, fetch_rows, rows_at, send_to_owners
from .build import monitored_points, reduced_operator
from .points import mode_strains
from .solve import StepState

__all__ = ["enrich_step", "enrichment_event", "extend_basis", "extend_span"]


def extend_basis(modes: RowBlocks, sv: np.ndarray, x: np.ndarray, tol: float = 1e-10):
    """Add column ``x`` (this rank's rows) to the POD (distributed modes, singular values)
    by Brand's incremental SVD (collective); returns the new (modes, singular values)."""
    isvd = IncrementalSVD.from_factors(modes.local, sv, modes.comm, tol=tol)
    isvd.add(np.asarray(x, float).ravel())
    return modes.with_local(np.ascontiguousarray(isvd.modes)), np.asarray(isvd.singular_values)


def extend_span(modes: RowBlocks, sv: np.ndarray, x: np.ndarray, tol: float = 1e-10):
    """The direction of ``x`` (this rank's rows) outside ``span(modes)`` (orthonormal,
    distributed), for a basis only used through its span: ``(q, s)`` with ``q`` this
    rank's rows of the unit residual of ``x`` (Gram-Schmidt twice), or None when it is
    below ``tol |x|``, and ``s`` the singular values of the POD updated by ``x`` (Brand's
    small r+1 SVD; what :func:`extend_basis` would give, for the record). Appending ``q``
    costs O(N r / P) where Brand's update rotates the whole basis, O(N r^2 / P).
    Collective."""
    x = np.asarray(x, float).ravel()
    comm = modes.comm

    def project(v):                      # (coefficients, v minus its projection)
        m = modes.tdot(v)
        return m, v - modes.dot(m)

    m, res = project(x)
    m2, res = project(res)
    m += m2
    rho = float(np.sqrt(comm.allreduce(float(res @ res))))
    xn = float(np.sqrt(comm.allreduce(float(x @ x))))
    grow = rho > tol * xn
    r = sv.size
    K = np.zeros((r + 1, r + 1))
    K[:r, :r] = np.diag(sv)
    K[:r, r] = m
    K[r, r] = rho if grow else 0.0
    s = np.linalg.svd(K, compute_uv=False)[:r + 1 if grow else r]
    return (res / rho if grow else None), s


def _one_blas_thread():
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # optional: only a speed-up
        return contextlib.nullcontext()
    return threadpool_limits(1)


def _update(model, u_loc, sig_loc, z_loc, full_order_seconds: float):
    """Update ``model`` in place from a high-fidelity snapshot given by the model's rows
    (``u_loc`` (3 n_local_nodes,), ``sig_loc`` (n_local_qp, 6), ``z_loc`` (n_local_qp,
    n_state)): bases, stress snapshots, reduced points; collective over the model's
    communicator, the reduced data identical on every rank. Records the split of the
    enrichment's time (``full_order_seconds``: that of the high-fidelity step)."""
    B, op, meta = model.bases, model.operator, model.meta
    quad = op.weights > 0                         # the quadrature points (not the imposed)
    warm, warm_weights = op.points[quad], op.weights[quad]
    t0 = time.perf_counter()
    phi, phi_sv = extend_basis(B.phi, B.phi_sv, u_loc)
    psi_p, psi_p_sv = extend_basis(B.psi_p, B.psi_p_sv, z_loc[:, op.p_column])
    # the internal variables only serve the reconstruction (least squares at the reduced
    # points): their span matters, so the new direction is appended instead of rotating
    # the basis (154,560 x 165 at size 1 of the blade, 1.2e6 rows at size 2)
    z_new, psi_z_sv = extend_span(B.psi_z, B.psi_z_sv, B.z_to_basis(z_loc).ravel())
    psi_z = B.psi_z if z_new is None else B.psi_z.appended(z_new)
    sigma = B.sigma.appended(sig_loc.ravel())
    # the indicator's points: Q-DEIM of the new p basis on each rank's points (the same
    # pivots at any rank count); the ECM below works on the same points
    imposed = np.setdiff1d(qdeim(psi_p.local, comm=model.comm), warm)
    # the critical point stays a reduced point
    kept = monitored_points(meta.get("critical_point"), meta.get("period"))
    if kept.size:
        keep = ~np.isin(warm, kept)
        warm, warm_weights = warm[keep], warm_weights[keep]
        imposed = np.union1d(imposed, kept)
    t1 = time.perf_counter()
    # the ECM streams over this rank's points: their stress snapshots (training, added),
    # the column blocks joined one block of points at a time
    stresses = sigma.as_points(6)
    # the history at every new point comes from the HF step, so warm-start points may
    # be dropped (weight 0); the small dense NNLS solves run faster on one BLAS thread.
    # No compression: warm-started, the residual starts below what compressed rows
    # resolve, and every scan would evaluate (nearly) all points exactly anyway
    with warnings.catch_warnings(), _one_blas_thread():
        warnings.simplefilter("ignore", RuntimeWarning)   # achieved error is reported
        pts, wts, info = ecm_fields(mode_strains(model.elements, phi), stresses,
                                    B.weights_fe.local[:, 0], comm=model.comm,
                                    tol=meta["ecm_tol"], warm_start=warm, imposed=imposed,
                                    warm_weights=warm_weights,
                                    keep_warm_start=False, return_info=True,
                                    batch=int(meta.get("ecm_batch", 1)), reduce=True,
                                    compress=False)
    model.bases = dataclasses.replace(B, phi=phi, phi_sv=phi_sv, psi_p=psi_p, psi_p_sv=psi_p_sv,
                           psi_z=psi_z, psi_z_sv=psi_z_sv, sigma=sigma)
    model.operator = reduced_operator(model.mesh, phi, B.f_unit, psi_p, pts, wts, imposed,
                                      meta, op.law)
    meta["n_enrichments"] = int(meta["n_enrichments"]) + 1
    meta["last_ecm_error"] = float(info["error"])
    t2 = time.perf_counter()
    meta["last_enrichment_seconds"] = {"full_order_step": full_order_seconds,
                                       "bases": t1 - t0, "ecm": t2 - t1}


def enrichment_event(model, step: int, indicator_before: float, seconds: float) -> dict:
    """The record of an enrichment of ``model`` just done (``OnlineResult.enrichments``):
    step, indicator before, seconds and their split, new sizes, achieved ECM error."""
    return {"step": step, "indicator_before": indicator_before, "seconds": seconds,
            "n_modes": model.n_modes, "n_points": model.n_points,
            "ecm_error": model.meta["last_ecm_error"],
            **{f"{k}_seconds": v for k, v in model.meta["last_enrichment_seconds"].items()}}


def previous_state(src, st: StepState) -> tuple[np.ndarray, np.ndarray]:
    """The full-order state of the reduced state ``st`` of model ``src``, by the model's
    rows: displacement (3 n_local_nodes,) and internal variables (n_local_qp, n_state)
    (least squares of the internal-variable basis at the reduced points, exact there).
    Collective."""
    B, op = src.bases, src.operator
    ns = int(src.meta["n_state"])
    u = B.phi.dot(st.q)
    rows = entity_rows(op.points, ns)
    c = np.linalg.lstsq(B.psi_z.rows(rows), B.z_to_basis(st.z).ravel(), rcond=None)[0]
    z = B.z_from_basis(B.psi_z.dot(c).reshape(-1, ns))
    p0, p1 = B.partition.point_range
    mine = (op.points >= p0) & (op.points < p1)
    z[op.points[mine] - p0] = st.z[mine]          # exact where the reduced model knows it
    return u, z


def enrich_step(model, st: StepState, T_nodes: np.ndarray, t_new: float, scale: float,
                comm: MPI.Comm | None = None, *, T_old: np.ndarray | None = None,
                source=None, guess: np.ndarray | None = None) -> StepState:
    """High-fidelity step from the reduced state ``st`` to ``t_new``; update the model in
    place (bases, reduced operator); return the reduced state at ``t_new`` on the new
    points (history from the high-fidelity step). Collective on the model's communicator
    (``comm``, if given, must be it).

    ``source``: the model ``st`` was computed with (default ``model``; same communicator),
    whose bases reconstruct the previous state (local models: the snapshot then enriches
    another model than the one that ran the step). ``guess``: reduced coordinates at
    ``t_new`` in the source's displacement basis (the reduced step's prediction, even when
    the indicator rejected it), where the high-fidelity Newton starts instead of the
    previous state: near the answer, it converges in a few iterations (a cold start from a
    virgin state at the load ramp took 15 here, docs/online.md). O(N / P) per rank, but
    for the full-order solver's own replicated displacement vector (3 n_nodes)."""
    comm = model.check_comm(comm, "enrichment")
    src = model if source is None else source
    part = model.bases.partition
    pt_off = part.points
    # 1. the high-fidelity state at the previous step, by the model's rows
    u_loc, z_loc = previous_state(src, st)
    # 2. one high-fidelity step: the solver's points fetched from the model's rows, its
    # answer sent back to them (one Alltoallv each way)
    t0 = time.perf_counter()
    solver = model.full_order_solver(comm, scale)
    qp = solver.elements.qp
    u_prev = gather_rows(u_loc, comm).reshape(-1, 3)     # the solver's own layout
    z_hf = fetch_rows(z_loc, pt_off, qp, comm)
    from ..fom.solver import MechState
    prev = MechState(st.time, u_prev, solver.elements.strains(u_prev), np.zeros((qp.size, 6)),
                     z_hf)
    u_guess = None
    if guess is not None:
        u_guess = gather_rows(src.bases.phi.dot(np.asarray(guess, float)), comm)
    hf = solver.step(prev, T_nodes, t_new, temperature_old=T_old, guess=u_guess)
    n0, n1 = part.node_range
    u_new = np.asarray(hf.u).reshape(-1)[3 * n0:3 * n1]
    eps_loc = send_to_owners(hf.strain, qp, pt_off, comm)
    sig_loc = send_to_owners(hf.stress, qp, pt_off, comm)
    z_new = send_to_owners(hf.internal, qp, pt_off, comm)
    # 3.-4. bases (incremental SVD) and ECM warm-started from the current quadrature
    # points: the same reduced operator on every rank
    _update(model, u_new, sig_loc, z_new, time.perf_counter() - t0)
    op = model.operator
    at = np.concatenate([eps_loc, sig_loc, z_new], axis=1)
    vals = rows_at(at, pt_off, op.points, comm)
    q = model.bases.phi.tdot(u_new)
    return StepState(t_new, q, vals[:, :6], vals[:, 12:], {"stress": vals[:, 6:12]})


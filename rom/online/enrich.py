"""Enrichment: one high-fidelity step (PETSc) from the reconstructed state, incremental
basis update, warm-started ECM (docs/online.md, DESIGN.md section 3)."""
from __future__ import annotations

import contextlib
import time
import warnings

import numpy as np
from mpi4py import MPI

from ..hyper import ecm_fields, qdeim
from ..linalg import IncrementalSVD
from ..parallel import UserError, as_comm, bcast_arrays, even_split
from .build import restrict
from .model import block_dot, block_rows, blocks, dot_blocks
from .points import mode_strains_all
from .solve import StepState

__all__ = ["enrich_step", "enrichment_event", "extend_basis", "extend_span"]


def extend_basis(modes: np.ndarray, sv: np.ndarray, x: np.ndarray, tol: float = 1e-10):
    """Add column ``x`` to the POD (modes (N, n), singular values (n,)) by Brand's
    incremental SVD; returns the new (modes, singular values)."""
    isvd = IncrementalSVD.from_factors(modes, sv, tol=tol)
    isvd.add(np.asarray(x, float).ravel())
    return np.ascontiguousarray(isvd.modes), np.asarray(isvd.singular_values)


def extend_span(modes, sv: np.ndarray, x: np.ndarray, tol: float = 1e-10):
    """The direction of ``x`` outside ``span(modes)`` (modes (N, r) orthonormal, or a list
    of column blocks of such a matrix), for a basis only used through its span:
    ``(q, s)`` with ``q`` (N,) the unit residual of ``x`` (Gram-Schmidt twice), or None
    when it is below ``tol |x|``, and ``s`` the singular values of the POD updated by ``x``
    (Brand's small r+1 SVD; what :func:`extend_basis` would give, for the record).
    Appending ``q`` costs O(N r) where Brand's update rotates the whole basis, O(N r^2),
    and must then be sent whole to every rank."""
    x = np.asarray(x, float).ravel()
    bs = [modes] if isinstance(modes, np.ndarray) else list(modes)

    def project(v):                      # (coefficients, v minus its projection)
        m = np.concatenate([b.T @ v for b in bs])
        return m, v - dot_blocks(bs, m)

    m, res = project(x)
    m2, res = project(res)
    m += m2
    rho = float(np.linalg.norm(res))
    grow = rho > tol * float(np.linalg.norm(x))
    r = sv.size
    K = np.zeros((r + 1, r + 1))
    K[:r, :r] = np.diag(sv)
    K[:r, r] = m
    K[r, r] = rho if grow else 0.0
    s = np.linalg.svd(K, compute_uv=False)[:r + 1 if grow else r]
    return (res / rho if grow else None), s


def _solver(model, comm: MPI.Comm, scale: float):
    key = (id(comm), scale)
    if key not in model._solvers:
        from ..fom.run import load_fom_case, make_solver
        case_file = model.meta["case_file"]
        try:
            fc = load_fom_case(case_file)
        except Exception as exc:  # noqa: BLE001 - name the file in any case
            raise UserError(f"enrichment needs the case file {case_file}: {exc}") from None
        model._solvers[key] = make_solver(fc, model.mesh, model.law, scale, comm)
    return model._solvers[key]


def _one_blas_thread():
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # optional: only a speed-up
        return contextlib.nullcontext()
    return threadpool_limits(1)


def _update(model, u, eps_g, sig_g, z_g, comm: MPI.Comm, full_order_seconds: float):
    """Update ``model`` in place from a high-fidelity snapshot: bases, stress snapshots,
    reduced points; identical on every rank (collective): the bases on rank 0 (broadcast),
    the ECM on every rank's share of the points (its result does not depend on the split).
    Records the split of the enrichment's time (``full_order_seconds``: that of the
    high-fidelity step). Returns the new displacement basis and reduced points."""
    full, red, meta = model.full, model.reduced, model.meta
    es = model.elements
    quad = red["weights"] > 0                     # the quadrature points (not the imposed)
    warm, warm_weights = red["points"][quad], red["weights"][quad]
    t0 = time.perf_counter()
    if comm.rank == 0:
        phi, phi_sv = extend_basis(full["phi"], full["phi_sv"], u.ravel())
        psi_p, psi_p_sv = extend_basis(full["psi_p"], full["psi_p_sv"],
                                       z_g[:, meta["p_column"]])
        # the internal variables only serve the reconstruction (least squares at the
        # reduced points): their span matters, so the new direction is appended instead of
        # rotating the basis (154,560 x 165 at size 1 of the blade, 1.2e6 rows at size 2)
        z_new, psi_z_sv = extend_span(blocks(full, "psi_z"), full["psi_z_sv"], z_g.ravel())
        bases = (phi, phi_sv, psi_p, psi_p_sv, np.zeros(0) if z_new is None else z_new,
                 psi_z_sv)
    else:
        bases = None
    bases = bcast_arrays(bases, comm)
    phi, psi_p = bases[0], bases[2]
    # the indicator's points: Q-DEIM of the new p basis, each rank on its share of the
    # points (the same pivots at any rank count); the ECM below works on the same share
    lo, hi = even_split(psi_p.shape[0], comm.size)[comm.rank:comm.rank + 2]
    imposed = np.setdiff1d(qdeim(psi_p[lo:hi], comm=comm), warm)
    # the new columns go to the (small) blocks of added columns: the training arrays are
    # never copied (same sig_g on every rank)
    added = {"psi_z_added": _append(full.get("psi_z_added"), bases[4], full["psi_z"]),
             "sigma_added": _append(full.get("sigma_added"), sig_g.ravel(), full["sigma"])}
    t1 = time.perf_counter()
    # the ECM streams over this rank's points: their stress snapshots (training, added)
    # side by side, copied for this rank's rows only, read in place by its products
    sig_local = np.hstack([b[6 * lo:6 * hi] for b in blocks({**full, **added}, "sigma")])
    stresses = sig_local.T.reshape(sig_local.shape[1], -1, 6)
    # the history at every new point comes from the HF step, so warm-start points may
    # be dropped (weight 0); the small dense NNLS solves run faster on one BLAS thread.
    # No compression: warm-started, the residual starts below what compressed rows
    # resolve, and every scan would evaluate (nearly) all points exactly anyway
    with warnings.catch_warnings(), _one_blas_thread():
        warnings.simplefilter("ignore", RuntimeWarning)   # achieved error is reported
        pts, wts, info = ecm_fields(mode_strains_all(es, phi)[:, lo:hi], stresses,
                                    full["weights_fe"][lo:hi], comm=comm,
                                    tol=meta["ecm_tol"], warm_start=warm, imposed=imposed,
                                    warm_weights=warm_weights,
                                    keep_warm_start=False, return_info=True,
                                    batch=int(meta.get("ecm_batch", 1)), reduce=True,
                                    compress=False)
    phi, phi_sv, psi_p, psi_p_sv, _, psi_z_sv = bases
    model.full = {**full, **added, "phi": phi, "phi_sv": phi_sv, "psi_p": psi_p,
                  "psi_p_sv": psi_p_sv, "psi_z_sv": psi_z_sv}
    model.reduced = restrict(model.mesh, phi, full["f_unit"], pts, wts, imposed)
    meta["n_enrichments"] = int(meta["n_enrichments"]) + 1
    meta["last_ecm_error"] = float(info["error"])
    t2 = time.perf_counter()
    meta["last_enrichment_seconds"] = {"full_order_step": full_order_seconds,
                                       "bases": t1 - t0, "ecm": t2 - t1}
    return phi, pts


def _append(added: np.ndarray | None, x: np.ndarray, base: np.ndarray) -> np.ndarray:
    """The block of added columns with column ``x`` (none if x is empty): a copy of the
    added block only, O(N e), never of ``base``."""
    if added is None:
        added = np.zeros((base.shape[0], 0))
    return added if x.size == 0 else np.column_stack([added, x])


def enrichment_event(model, step: int, indicator_before: float, seconds: float) -> dict:
    """The record of an enrichment of ``model`` just done (``OnlineResult.enrichments``):
    step, indicator before, seconds and their split, new sizes, achieved ECM error."""
    return {"step": step, "indicator_before": indicator_before, "seconds": seconds,
            "n_modes": model.n_modes, "n_points": model.n_points,
            "ecm_error": model.meta["last_ecm_error"],
            **{f"{k}_seconds": v for k, v in model.meta["last_enrichment_seconds"].items()}}


def enrich_step(model, st: StepState, T_nodes: np.ndarray, t_new: float, scale: float,
                comm: MPI.Comm | None = None, *, T_old: np.ndarray | None = None,
                source=None, guess: np.ndarray | None = None) -> StepState:
    """High-fidelity step from the reduced state ``st`` to ``t_new``; update the model in
    place (bases, reduced points, reduced arrays); return the reduced state at ``t_new``
    on the new points (history from the high-fidelity step). Collective on ``comm``.

    ``source``: the model ``st`` was computed with (default ``model``), whose bases
    reconstruct the previous state (local models: the snapshot then enriches another
    model than the one that ran the step). ``guess``: reduced coordinates at ``t_new`` in
    the source's displacement basis (the reduced step's prediction, even when the
    indicator rejected it), where the high-fidelity Newton starts instead of the previous
    state: near the answer, it converges in a few iterations (a cold start from a virgin
    state at the load ramp took 15 here, docs/online.md). O(N)."""
    comm = as_comm(comm)
    src = model if source is None else source
    full, red = src.full, src.reduced
    es = src.elements
    ns = src.meta["n_state"]
    # 1. the high-fidelity state at the previous step
    u_prev = (full["phi"] @ st.q).reshape(-1, 3)
    strain = es.strains(u_prev)
    rows = (red["points"][:, None] * ns + np.arange(ns)).ravel()
    c = np.linalg.lstsq(block_rows(full, "psi_z", rows), st.z.ravel(), rcond=None)[0]
    z_all = block_dot(full, "psi_z", c).reshape(-1, ns)
    z_all[red["points"]] = st.z          # exact where the reduced model knows it
    # 2. one high-fidelity step
    t0 = time.perf_counter()
    solver = _solver(model, comm, scale)
    u_guess = None if guess is None else full["phi"] @ np.asarray(guess, float)
    hf = solver.step(solver.state_from_global(st.time, u_prev, strain, z_all), T_nodes, t_new,
                     temperature_old=T_old, guess=u_guess)
    eps_g = solver.gather_points(hf.strain)
    sig_g = solver.gather_points(hf.stress)
    z_g = solver.gather_points(hf.internal)
    # 3.-4. bases (incremental SVD) and ECM warm-started from the current quadrature
    # points: the same model on every rank
    phi, pts = _update(model, hf.u, eps_g, sig_g, z_g, comm, time.perf_counter() - t0)
    return StepState(t_new, phi.T @ hf.u.ravel(), eps_g[pts], z_g[pts],
                     {"stress": sig_g[pts]})

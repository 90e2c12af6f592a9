"""Distributed quasi-static mechanics: Newton with PETSc KSP over a partitioned mesh.

:class:`MechanicalSolver` owns the partition, the PETSc objects and the element
data of its rank. :meth:`MechanicalSolver.step` is the restart entry point:
"advance one time step from this state with this temperature".
"""
from __future__ import annotations

import time
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field, replace

import numpy as np
from mpi4py import MPI
from petsc4py import PETSc

from ..linalg.rowblocks import entity_rows
from ..materials.base import Material, MaterialError
from ..parallel import UserError, as_comm, raise_if_failed
from .discretization import ElementSet
from .loads import Loads
from .mesh import FEMesh
from .partition import partition_mesh
from .petsc_tools import coo_matrix, ghost_scatter, options_pushed, to_petsc_int

__all__ = [
    "DEFAULT_PETSC_OPTIONS",
    "ConvergenceError",
    "MechState",
    "MechanicalSolver",
    "NewtonOptions",
]

#: defaults of the linear solver (overridden by the case file, then the command line).
#: CG on the true (unpreconditioned) residual, so that the relative tolerance set by the
#: inexact Newton means what it says; smoothed-aggregation GAMG on the 3x3 node blocks
#: with the rigid-body near-nullspace, Chebyshev/Jacobi smoothing, a drop threshold that
#: keeps the coarse grids sparse, and prolongators reused when only values change.
DEFAULT_PETSC_OPTIONS = {
    "ksp_type": "cg", "ksp_norm_type": "unpreconditioned", "ksp_rtol": 1e-10,
    "ksp_max_it": 2000,
    "pc_type": "gamg", "pc_gamg_type": "agg", "pc_gamg_agg_nsmooths": 1,
    "pc_gamg_threshold": 0.05, "pc_gamg_reuse_interpolation": True,
    "mg_levels_ksp_type": "chebyshev", "mg_levels_pc_type": "jacobi",
}


#: changed defaults for a law whose consistent tangent is not symmetric
#: (``symmetric_tangent = False``, e.g. Chaboche's with recovering back stresses): GMRES,
#: preconditioned on the right so that the unpreconditioned residual is the one it minimizes
NONSYMMETRIC_OPTIONS = {"ksp_type": "gmres", "ksp_pc_side": "right", "ksp_gmres_restart": 200}


class ConvergenceError(UserError, RuntimeError):
    """Newton, the linear solver or a local integration failed (says which step and rank)."""

    collective = True


@dataclass
class NewtonOptions:
    """Global Newton settings.

    rtol : relative residual tolerance (to max(|r_0|, |f_ext|, |reactions|))
    atol : absolute residual tolerance [N]
    max_iter : iterations before :class:`ConvergenceError`
    """

    rtol: float = 1e-8
    atol: float = 1e-12
    max_iter: int = 25
    #: ``"ew"``: inexact Newton, the KSP relative tolerance follows the Newton residual
    #: (Eisenstat-Walker choice 2 capped by the relative residual, see
    #: :meth:`MechanicalSolver.forcing`); ``"fixed"``: the KSP ``rtol`` for every solve
    forcing: str = "ew"
    #: largest KSP relative tolerance of the inexact Newton
    eta_max: float = 1e-2
    #: keep the preconditioner across Newton iterations and time steps while it works
    pc_reuse: bool = True
    #: rebuild the preconditioner when a solve needs more than this factor times the
    #: KSP iterations per decade of residual reduction of the last fresh setup
    pc_rebuild_ratio: float = 1.5
    #: how many times a failing time step is halved before the failure is raised
    max_cuts: int = 3
    #: backtracking: at most this many halvings of a correction that does not give the
    #: sufficient decrease |r(u + a du)| <= (1 - 1e-4 a) |r(u)| (0: full Newton steps)
    line_search: int = 8

    def __post_init__(self):
        if self.forcing not in ("ew", "fixed"):
            raise UserError(f"Newton forcing must be 'ew' or 'fixed', got {self.forcing!r}")
        if not 0.0 < self.eta_max < 1.0:
            raise UserError(f"Newton eta_max must be in (0, 1), got {self.eta_max}")
        if self.pc_rebuild_ratio < 1.0:
            raise UserError(f"pc_rebuild_ratio must be >= 1, got {self.pc_rebuild_ratio}")
        if self.max_cuts < 0:
            raise UserError(f"max_cuts must be >= 0, got {self.max_cuts}")
        if self.line_search < 0:
            raise UserError(f"line_search must be >= 0, got {self.line_search}")


@dataclass
class MechState:
    """The state of the structure at one time.

    Attributes
    ----------
    time : [s]
    u : (n_nodes, 3) nodal displacements, mesh numbering, the same on every rank [m]
    strain, stress : (n_qp_local, 6) at this rank's integration points (Voigt)
    internal : (n_qp_local, n_state) internal variables at this rank's points
    newton : residual norms of the Newton iterations that produced the state
    ksp_iterations : KSP iterations of each Newton iteration (one fewer than ``newton``)
    """

    time: float
    u: np.ndarray
    strain: np.ndarray
    stress: np.ndarray
    internal: np.ndarray
    newton: list = field(default_factory=list)
    ksp_iterations: list = field(default_factory=list)


class MechanicalSolver:
    """Quasi-static small-strain mechanics on a mesh partitioned over ``comm``.

    Parameters
    ----------
    mesh : the mesh, identical on every rank
    material : constitutive law (``rom.materials``)
    loads : boundary conditions and loads (groups are checked here)
    comm : communicator (``None``: serial)
    petsc_options : options for the linear solver (keys without the leading dash,
        e.g. ``{"ksp_type": "cg"}``), applied under ``prefix``; command-line options
        ``-<prefix><key>`` win
    prefix : PETSc options prefix
    newton : Newton settings
    partition : ``"auto"``, ``"metis"`` or ``"rcb"``
    """

    def __init__(self, mesh: FEMesh, material: Material, loads: Loads, *,
                 comm: MPI.Comm | None = None, petsc_options: Mapping | None = None,
                 prefix: str = "", newton: NewtonOptions | None = None,
                 partition: str = "auto"):
        self.comm = as_comm(comm)
        self.mesh, self.material, self.loads = mesh, material, loads
        self.newton = newton or NewtonOptions()
        loads.check(mesh)
        rank = self.comm.rank
        self.part = partition_mesh(mesh, self.comm, method=partition)
        self.elements = ElementSet(mesh, self.part.elements(rank))
        self.n_qp = self.elements.n_qp
        n2 = self.part.new_of_old
        self.dof_start, self.dof_end = self.part.dof_range(rank)
        n_local = self.dof_end - self.dof_start
        # element dofs in the rank-contiguous numbering, and the COO pattern
        self._edofs = [(3 * n2[b.cells][:, :, None] + np.arange(3)).reshape(len(b.cells), -1)
                       for b in self.elements.blocks]
        rows = np.concatenate([np.repeat(d, d.shape[1], axis=1).ravel() for d in self._edofs])
        cols = np.concatenate([np.tile(d, (1, d.shape[1])).ravel() for d in self._edofs])
        pc = self.comm
        self.A = coo_matrix(pc, n_local, rows, cols)
        self.u = self.A.createVecRight()
        self.r = self.A.createVecRight()
        self.du = self.A.createVecRight()
        self.f_ext = self.A.createVecRight()
        self._rdofs, self._rinv = np.unique(np.concatenate([d.ravel() for d in self._edofs]),
                                            return_inverse=True)
        # ghosted displacements: the nodes of this rank's elements
        self._nodes = self.elements.nodes
        gdofs = entity_rows(n2[self._nodes], 3)
        self._scatter, self._uloc = ghost_scatter(self.u, gdofs)
        # gather of the whole displacement (mesh numbering) on every rank
        self._old_of_new = np.argsort(n2)
        # Dirichlet rows owned here
        own = (self.part.node_part == rank)
        drows, dsel = [], []
        for k, d in enumerate(loads.dirichlet):
            nodes = mesh.group(d.group).nodes
            nodes = nodes[own[nodes]]
            for c in d.components:
                drows.append(3 * n2[nodes] + c)
                dsel.append(np.full(len(nodes), k))
        self._drows = np.concatenate(drows) if drows else np.zeros(0, np.int64)
        dsel = np.concatenate(dsel) if dsel else np.zeros(0, np.int64)
        self._drows, first = np.unique(self._drows, return_index=True)  # last listed wins? first
        self._dvalues = np.array([loads.dirichlet[k].value for k in dsel[first]], float)
        self._dis = PETSc.IS().createGeneral(to_petsc_int(self._drows), comm=pc)
        # external loads of unit amplitude
        self._f_ext_unit = self._external_forces()
        # linear solver
        self.ksp = PETSc.KSP().create(comm=pc)
        self.ksp.setOptionsPrefix(prefix)
        self._set_near_nullspace(pc)
        self.ksp.setOperators(self.A)
        # the options are pushed again around each preconditioner set-up (inner solvers)
        defaults = DEFAULT_PETSC_OPTIONS
        if not getattr(material, "symmetric_tangent", True):
            defaults = {**DEFAULT_PETSC_OPTIONS, **NONSYMMETRIC_OPTIONS}
            if str((petsc_options or {}).get("ksp_type", "")).lower() == "cg":
                warnings.warn("ksp_type cg with a law whose tangent is not symmetric "
                              f"({type(material).__name__}): CG may stall or diverge; "
                              "leave ksp_type out (GMRES) or use gmres", stacklevel=2)
        self._options = (prefix, defaults, dict(petsc_options or {}))
        with options_pushed(*self._options):
            self.ksp.setFromOptions()
            self._newton_from_options(prefix)
        #: KSP relative tolerance of the ``fixed`` forcing, lower bound of ``ew``
        self.ksp_rtol = self.ksp.getTolerances()[0]
        self._pc_fresh_rate = None      # KSP iterations per decade right after a PC setup
        self._pc_stale = True           # the next solve sets the preconditioner up
        self.timings = {"assembly": 0.0, "solve": 0.0, "pc_setup": 0.0, "material": 0.0}
        #: one record per Newton iteration with a linear solve (see :meth:`step`)
        self.log: list[dict] = []
        #: end times of the steps that were cut in halves (one entry per cut)
        self.cuts: list[float] = []
        #: end times of the steps whose Newton failed from the given ``guess`` (retried)
        self.guess_failures: list[float] = []

    # ------------------------------------------------------------------ setup helpers
    def _newton_from_options(self, prefix: str) -> None:
        """Newton settings from the options database (case file or command line), under the
        prefix: the SNES convergence options PETSc users know, ``-snes_rtol``,
        ``-snes_atol``, ``-snes_max_it`` (the global Newton is ours, not a SNES, and reads
        only these three), and ``-rom_ksp_forcing ew|fixed``, ``-rom_eta_max``,
        ``-rom_pc_reuse``, ``-rom_pc_rebuild_ratio``, ``-rom_max_cuts``,
        ``-rom_line_search``."""
        opts = PETSc.Options(prefix)
        nw = self.newton
        self.newton = replace(
            nw, rtol=opts.getReal("snes_rtol", nw.rtol), atol=opts.getReal("snes_atol", nw.atol),
            max_iter=opts.getInt("snes_max_it", nw.max_iter),
            forcing=opts.getString("rom_ksp_forcing", nw.forcing),
            eta_max=opts.getReal("rom_eta_max", nw.eta_max),
            pc_reuse=opts.getBool("rom_pc_reuse", nw.pc_reuse),
            pc_rebuild_ratio=opts.getReal("rom_pc_rebuild_ratio", nw.pc_rebuild_ratio),
            max_cuts=opts.getInt("rom_max_cuts", nw.max_cuts),
            line_search=opts.getInt("rom_line_search", nw.line_search))

    def _external_forces(self) -> PETSc.Vec:
        f = self.A.createVecRight()
        n2 = self.part.new_of_old
        nodes, forces = self.loads.pressure_forces(self.mesh, self.part.node_part, self.comm.rank)
        idx = [entity_rows(n2[nodes], 3)]
        vals = [forces.ravel()]
        if self.loads.centrifugal is not None:
            b = self.loads.centrifugal.force_density(self.elements.coordinates(), self.loads.density)
            fe = self.elements.body_forces(b)
            idx += [d.ravel() for d in self._edofs]
            vals += [v.ravel() for v in fe]
        idx, vals = np.concatenate(idx), np.concatenate(vals)
        if len(idx):
            u, inv = np.unique(idx, return_inverse=True)
            f.setValues(to_petsc_int(u), np.bincount(inv, weights=vals), addv=PETSc.InsertMode.ADD)
        f.assemble()
        return f

    def _set_near_nullspace(self, pc) -> None:
        own = self._old_of_new[self.part.node_offsets[self.comm.rank]:
                               self.part.node_offsets[self.comm.rank + 1]]
        coords = PETSc.Vec().createMPI((3 * len(own), PETSc.DETERMINE), bsize=3, comm=pc)
        coords.setArray(self.mesh.points[own].ravel())
        self.nullspace = PETSc.NullSpace().createRigidBody(coords)
        self.A.setNearNullSpace(self.nullspace)

    # ------------------------------------------------------------------ state helpers
    def initial_state(self, time: float = 0.0) -> MechState:
        """Zero displacement, strain, stress and a virgin material at ``time``."""
        z = np.zeros((self.n_qp, 6))
        return MechState(time, np.zeros((self.mesh.n_nodes, 3)), z, z.copy(),
                         self.material.initial_state(self.n_qp))

    def state_from_global(self, time: float, u: np.ndarray, strain: np.ndarray,
                          internal: np.ndarray, stress: np.ndarray | None = None) -> MechState:
        """A state from arrays over *all* integration points (global numbering), e.g. from
        a reduced model: keeps this rank's points."""
        qp = self.elements.qp
        st = np.zeros((self.n_qp, 6)) if stress is None else np.asarray(stress)[qp]
        return MechState(time, np.asarray(u, float).reshape(-1, 3), np.asarray(strain)[qp], st,
                         np.asarray(internal)[qp])

    def gather_points(self, values: np.ndarray, root: int | None = None) -> np.ndarray | None:
        """Values at this rank's points (n_qp_local, ...) -> all points in global order
        (on every rank, or only on ``root``)."""
        values = np.ascontiguousarray(values)
        parts = self.comm.allgather((self.elements.qp, values)) if root is None else \
            self.comm.gather((self.elements.qp, values), root=root)
        if parts is None:
            return None
        out = np.empty((self.elements.n_qp_global,) + values.shape[1:], values.dtype)
        for qp, v in parts:  # loop over ranks
            out[qp] = v
        return out

    def _u_full(self) -> np.ndarray:
        """All nodal displacements (n_nodes, 3), mesh numbering, on every rank."""
        arr = self.u.getArray(readonly=True)
        parts = self.comm.allgather(np.asarray(arr))
        new = np.concatenate(parts).reshape(-1, 3)
        return new[self.part.new_of_old]

    def _set_u(self, u_mesh: np.ndarray) -> None:
        own = self._old_of_new[self.part.node_offsets[self.comm.rank]:
                               self.part.node_offsets[self.comm.rank + 1]]
        self.u.setArray(np.ascontiguousarray(u_mesh[own]).ravel())

    def _ghost_u(self) -> np.ndarray:
        self._scatter.scatter(self.u, self._uloc, PETSc.InsertMode.INSERT,
                              PETSc.ScatterMode.FORWARD)
        full = np.zeros((self.mesh.n_nodes, 3))
        full[self._nodes] = self._uloc.getArray(readonly=True).reshape(-1, 3)
        return full

    # ------------------------------------------------------------------ one step
    def step(self, state: MechState, temperature: np.ndarray, time_new: float, *,
             temperature_old: np.ndarray | None = None, cuts: int | None = None,
             guess: np.ndarray | None = None) -> MechState:
        """Advance one time step (the restart entry point), cutting it in halves when it
        fails.

        Parameters
        ----------
        state : converged state at the start of the step (``state.time``)
        temperature : (n_nodes,) nodal temperature at ``time_new`` [K], mesh numbering
        time_new : end of the step [s]
        temperature_old : nodal temperature at ``state.time``: sub-steps interpolate
            linearly between the two (default: ``temperature`` over the whole step)
        cuts : how many times a failing step may be halved (default ``newton.max_cuts``);
            sub-steps are internal: the returned state is at ``time_new``. Each cut is
            counted in ``self.cuts``.
        guess : (n_nodes, 3) displacement at ``time_new`` to start the Newton from instead of
            ``state.u`` (e.g. a reduced model's prediction: an enrichment step then needs a
            few Newton iterations instead of those of a cold start); the Dirichlet values
            are imposed on it. The converged state is the same to the Newton tolerance. If
            the Newton fails from the guess, the step is retried from ``state.u`` (counted
            in ``self.guess_failures``), then cut as usual; sub-steps start from their
            state.

        Returns
        -------
        the converged :class:`MechState` at ``time_new``

        Raises
        ------
        ConvergenceError : the step still fails after ``cuts`` halvings (the message is
            that of the last failure); raised on every rank
        """
        cuts = self.newton.max_cuts if cuts is None else int(cuts)
        if guess is not None:
            guess = np.asarray(guess, float)
            if guess.size != state.u.size:
                raise UserError(f"guess must be the nodal displacements {state.u.shape}, "
                                f"got shape {guess.shape}")
            guess = guess.reshape(state.u.shape)
            try:
                return self._step(state, temperature, time_new, guess)
            except ConvergenceError:
                self.guess_failures.append(float(time_new))
        try:
            return self._step(state, temperature, time_new)
        except ConvergenceError:
            if cuts <= 0:
                raise
        self.cuts.append(float(time_new))
        t_mid = 0.5 * (state.time + float(time_new))
        T_new = np.asarray(temperature, float)
        T_mid = T_new if temperature_old is None else 0.5 * (np.asarray(temperature_old) + T_new)
        mid = self.step(state, T_mid, t_mid, temperature_old=temperature_old, cuts=cuts - 1)
        return self.step(mid, T_new, time_new, temperature_old=T_mid, cuts=cuts - 1)

    def _step(self, state: MechState, temperature: np.ndarray, time_new: float,
              guess: np.ndarray | None = None) -> MechState:
        """One time step without cutting (Newton from ``guess``, default ``state.u``).

        Parameters
        ----------
        state : converged state at the start of the step (``state.time``)
        temperature : (n_nodes,) nodal temperature at ``time_new`` [K], mesh numbering
        time_new : end of the step [s]

        Returns
        -------
        the converged :class:`MechState` at ``time_new``

        Raises
        ------
        ConvergenceError : Newton did not converge, the linear solver diverged or the
            material integration failed; raised on every rank, names the step time and rank
        """
        dt = float(time_new - state.time)
        fac = self.loads.factor(time_new)
        T_qp = self.elements.at_points(np.asarray(temperature, float))
        self._set_u(state.u if guess is None else guess)
        if len(self._drows):
            self.u.setValues(to_petsc_int(self._drows), fac * self._dvalues)
        self.u.assemble()
        norms, kits, ref, target = [], [], None, None
        m_mark = self.timings["material"]
        out = self._evaluate(state, T_qp, dt, time_new)
        rnorm = self._residual(out, fac)
        for it in range(self.newton.max_iter + 1):
            if ref is None:
                ref = max(rnorm, fac * self._f_ext_unit.norm(), self._reaction_norm)
                target = max(self.newton.rtol * ref, self.newton.atol)
            norms.append(rnorm)
            if rnorm <= target:
                break
            if it == self.newton.max_iter:
                raise ConvergenceError(
                    f"Newton did not converge at t = {time_new:g} s (dt = {dt:g} s) in "
                    f"{self.newton.max_iter} iterations: residual norms "
                    + ", ".join(f"{n:.3e}" for n in norms))
            t1 = time.perf_counter()
            self._assemble_matrix(out["Ke"])
            t2 = time.perf_counter()
            self.timings["assembly"] += t2 - t1
            eta = self.forcing(norms, ref, target)
            self.r.scale(-1.0)
            rec = self._linear_solve(eta, time_new, it)
            # an inexact solve leaves O(eta) values on the Dirichlet rows (the multigrid
            # correction couples them): zero them, u keeps its imposed values (local only)
            with self.du as arr:
                arr[self._drows - self.dof_start] = 0.0
            out, rnorm, alpha = self._line_search(state, T_qp, dt, time_new, fac, rnorm, eta)
            rec.update(time=time_new, newton_iteration=it, residual=norms[-1],
                       assembly_s=t2 - t1, step_length=alpha,
                       material_s=self.timings["material"] - m_mark)
            m_mark = self.timings["material"]
            self.log.append(rec)
            kits.append(rec["ksp_iterations"])
        return MechState(time_new, self._u_full(), out["strain"], out["stress"], out["state"],
                         norms, kits)

    def _residual(self, out: dict, fac: float) -> float:
        t0 = time.perf_counter()
        self._assemble_residual(out["fe"], fac)
        self.timings["assembly"] += time.perf_counter() - t0
        return self.r.norm()

    def _line_search(self, state, T_qp, dt, time_new, fac, rnorm, eta):
        """u += a du with a = 1, 1/2, ... until |r| <= (1 - 1e-4 a (1 - eta)) |r_old|
        (backtracking for an inexact Newton direction); a material failure at a trial
        point counts as no decrease. Returns (evaluation, |r|, a) at the accepted point."""
        n_ls = self.newton.line_search
        alpha, last = 1.0, None
        self.u.axpy(1.0, self.du)
        for k in range(n_ls + 1):  # loop over step halvings
            try:
                out = self._evaluate(state, T_qp, dt, time_new)
            except ConvergenceError as exc:
                if n_ls == 0:
                    raise
                out, r_new, last = None, np.inf, exc
            else:
                r_new = self._residual(out, fac)
            if n_ls == 0 or r_new <= (1.0 - 1e-4 * alpha * (1.0 - eta)) * rnorm:
                return out, r_new, alpha
            if k == n_ls:
                break
            self.u.axpy(-0.5 * alpha, self.du)     # back to u_old + alpha/2 du
            alpha *= 0.5
        reason = f" (material: {last})" if out is None else \
            f": residual {r_new:.3e} >= {rnorm:.3e}"
        raise ConvergenceError(f"Newton line search failed at t = {time_new:g} s "
                               f"(dt = {dt:g} s) after {n_ls} halvings{reason}")

    def forcing(self, norms: list, ref: float, target: float) -> float:
        """KSP relative tolerance for the next Newton correction (inexact Newton).

        ``fixed``: the KSP ``rtol`` option. ``ew``: with r_k the Newton residual norms,

            eta_k = min(eta_max, gamma (r_k / r_{k-1})^2, r_k / ref)    (eta_0 = eta_max)

        (Eisenstat-Walker choice 2, gamma = 0.9, with the safeguard
        ``eta_k >= gamma eta_{k-1}^2`` when that exceeds 0.1, capped by the relative
        residual so that eta_k = O(r_k): the Newton convergence stays quadratic),
        and never below ``max(rtol_ksp, 0.1 target / r_k)`` (no over-solving of the last
        correction: its linear residual is a tenth of the Newton target).
        """
        nw = self.newton
        if nw.forcing == "fixed":
            return self.ksp_rtol
        r = norms[-1]
        if len(norms) == 1:
            eta = nw.eta_max
        else:
            gamma = 0.9
            eta = gamma * (r / norms[-2]) ** 2
            prev = self._eta_prev
            if gamma * prev**2 > 0.1:
                eta = max(eta, gamma * prev**2)
            eta = min(eta, r / ref, nw.eta_max)
        eta = min(max(eta, self.ksp_rtol, 0.1 * target / r), nw.eta_max)
        self._eta_prev = eta
        return eta

    def _linear_solve(self, eta: float, time_new: float, it: int) -> dict:
        """Solve A du = r (r already negated) to relative tolerance ``eta``; reuse the
        preconditioner unless it is stale; on a failed solve with a reused one, rebuild and
        retry once."""
        nw = self.newton
        self.ksp.setTolerances(rtol=eta)
        rebuilt = False
        for attempt in range(2):  # at most one retry with a fresh preconditioner
            fresh = self._pc_stale or not nw.pc_reuse or attempt == 1
            self.ksp.getPC().setReusePreconditioner(not fresh)
            t0, c0 = time.perf_counter(), time.process_time()
            if fresh:
                with options_pushed(*self._options):  # read by the inner solvers it creates
                    self.ksp.setUp()              # PCSetUp (GAMG: reuses prolongators)
            t1, c1 = time.perf_counter(), time.process_time()
            self.ksp.solve(self.r, self.du)
            t2, c2 = time.perf_counter(), time.process_time()
            self.timings["pc_setup"] += t1 - t0
            self.timings["solve"] += t2 - t0
            rebuilt = rebuilt or fresh
            reason = self.ksp.getConvergedReason()
            if reason > 0 or fresh:
                break
        n_its = self.ksp.getIterationNumber()
        if reason < 0:
            raise ConvergenceError(f"linear solver diverged (reason {reason}) at "
                                   f"t = {time_new:g} s, Newton iteration {it}, after "
                                   f"{n_its} iterations")
        bnorm = self.r.norm()
        achieved = self.ksp.getResidualNorm() / bnorm if bnorm > 0 else 1.0
        rate = n_its / max(-np.log10(max(achieved, 1e-300)), 0.5)    # its per decade
        if fresh:
            self._pc_fresh_rate, self._pc_stale = rate, False
        elif rate > nw.pc_rebuild_ratio * self._pc_fresh_rate + 1.0:
            self._pc_stale = True                 # next solve sets the preconditioner up
        return {"ksp_iterations": n_its, "ksp_rtol": eta, "pc_setup": rebuilt,
                "pc_setup_s": t1 - t0, "solve_s": t2 - t0, "solve_cpu_s": c2 - c0,
                "pc_setup_cpu_s": c1 - c0}

    def _evaluate(self, state: MechState, T_qp, dt, time_new) -> dict:
        t0 = time.perf_counter()
        try:
            return self._evaluate_at(state, T_qp, dt, time_new)
        finally:
            self.timings["material"] += time.perf_counter() - t0

    def _evaluate_at(self, state: MechState, T_qp, dt, time_new) -> dict:
        msg = None
        try:
            out = self.elements.evaluate(self.material, self._ghost_u(), state.strain,
                                         state.internal, T_qp, dt)
        except MaterialError as exc:
            msg, out = str(exc), None
        raise_if_failed(msg, self.comm, ConvergenceError,
                        what=f"material integration failed at t = {time_new:g} s (dt = {dt:g} s)")
        return out

    def _assemble_residual(self, fe: list, fac: float) -> None:
        vals = np.bincount(self._rinv, weights=np.concatenate([f.ravel() for f in fe]),
                           minlength=len(self._rdofs))
        self.r.zeroEntries()
        self.r.setValues(to_petsc_int(self._rdofs), vals, addv=PETSc.InsertMode.ADD)
        self.r.assemble()
        self.r.axpy(-fac, self._f_ext_unit)
        rows = self._drows - self.dof_start
        arr = self.r.getArray()
        self._reaction_norm = float(np.sqrt(self.comm.allreduce(float(arr[rows] @ arr[rows]))))
        arr[rows] = 0.0
        del arr

    def _assemble_matrix(self, Ke: list) -> None:
        self.A.setValuesCOO(np.concatenate([k.ravel() for k in Ke]), PETSc.InsertMode.INSERT)
        self.A.zeroRowsColumns(self._dis, diag=1.0)

    def solve(self, times: np.ndarray, temperature, *, state: MechState | None = None,
              callback=None) -> MechState:
        """March over ``times`` (times[0] is the initial state).

        Parameters
        ----------
        times : (m,) increasing times [s]
        temperature : callable t -> (n_nodes,) nodal temperature [K]
        state : initial state (default: virgin at times[0])
        callback : called as ``callback(step_index, state)`` after every converged step

        Returns
        -------
        the final state
        """
        state = state or self.initial_state(float(times[0]))
        T_old = temperature(float(times[0]))
        for i, t in enumerate(times[1:], start=1):
            T_new = temperature(float(t))
            state = self.step(state, T_new, float(t), temperature_old=T_old)
            T_old = T_new
            if callback is not None:
                callback(i, state)
        return state

    def matrix_info(self) -> dict:
        """PETSc matrix info (``mallocs`` is 0 when the preallocation was exact)."""
        return self.A.getInfo()

    def destroy(self) -> None:
        for obj in (self.ksp, self.A, self.u, self.r, self.du, self.f_ext, self._f_ext_unit,
                    self._uloc, self._scatter, self._dis, self.nullspace):
            obj.destroy()

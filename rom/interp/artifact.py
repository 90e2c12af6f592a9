"""Reduced-model artifact for operator interpolation (HDF5 group ``interp``, schema 1).

Layout (all arrays float64 unless said; M: matrix terms, F: rhs terms, n: basis size,
Q = F + n M estimator components, K: magic entries of the Riesz representatives)::

    interp/                       attrs: schema="rom.interp", schema_version, estimator,
                                         coercivity (float; NaN if it was a callable),
                                         coercivity_kind ("constant" | "min_theta" |
                                         "callable"), coercivity_reference (min_theta)
      matrix_eim/  magic_rows, magic_cols (M,) int64; B, C (M, M); parameters (M, d);
                   selected (M,) int64; errors (M+1,); training_gamma (K_train, M)
                   attrs: scale, n_rows, n_cols
      rhs_eim/     magic_rows (F,) int64; B, C (F, F); parameters; selected; errors;
                   training_gamma; attrs: scale, n_rows
      reduced_matrices (M, n, n)  V^T Q_m V ;  reduced_rhs (F, n)  V^T q_f
      estimator/   gram (Q, Q); P (Q, K); B (K, K); Lt (K, K)
      basis (N, n) X-orthonormal basis (optional)
      history/     selected (n,) int64; max_bound (n,); training (K_train, d); seconds/
                   (attrs: timings), validation arrays when the offline stage made them

Written by rank 0 through :func:`rom.io.atomic.atomic_h5` (atomic; rank-count independent
content); read serially.
"""
from __future__ import annotations

import math
import os
from typing import Any

import h5py
import numpy as np
from mpi4py import MPI

from ..io.atomic import atomic_h5, stamp_provenance
from ..parallel import as_comm
from ._dist import gather_rows
from .estimator import Coercivity, MinTheta, OnlineEstimator
from .meim import MatrixEIM, VectorEIM
from .rb import LinearProblem, RBModel

__all__ = ["SCHEMA", "SCHEMA_VERSION", "load", "read_group", "save", "write_group"]

SCHEMA = "rom.interp"
SCHEMA_VERSION = 1
_EIM = ("B", "C", "parameters", "selected", "errors", "training_gamma", "magic_rows")


def write_group(group: h5py.Group, model: RBModel, basis: np.ndarray | None = None) -> None:
    """Write ``model`` into an open (rank-0) HDF5 group; ``basis`` is the gathered (N, n)."""
    coer = model.coercivity
    group.attrs["schema"] = SCHEMA
    group.attrs["schema_version"] = SCHEMA_VERSION
    group.attrs["estimator"] = model.estimator
    kind = ("min_theta" if isinstance(coer, MinTheta) else
            "callable" if callable(coer) else "constant")
    group.attrs["coercivity_kind"] = kind
    group.attrs["coercivity"] = math.nan if callable(coer) else float(coer)
    if kind == "min_theta":
        group.attrs["coercivity_reference"] = np.asarray(coer.reference, dtype=float)
    for name, eim in (("matrix_eim", model.matrix_eim), ("rhs_eim", model.rhs_eim)):
        g = group.create_group(name)
        for key in _EIM:
            g[key] = np.asarray(getattr(eim, key))
        g.attrs["scale"] = float(eim.scale)
        g.attrs["n_rows"] = int(eim.n_rows)
        if isinstance(eim, MatrixEIM):
            g["magic_cols"] = np.asarray(eim.magic_cols)
            g.attrs["n_cols"] = int(eim.n_cols)
    group["reduced_matrices"] = model.reduced_matrices
    group["reduced_rhs"] = model.reduced_rhs
    e = group.create_group("estimator")
    for key in ("gram", "P", "B", "Lt"):
        e[key] = getattr(model.online_estimator, key)
    if basis is not None:
        group.create_dataset("basis", data=basis, chunks=True)
    h = group.create_group("history")
    for key, value in model.history.items():
        if isinstance(value, dict):            # e.g. timings: attributes of a subgroup
            sub = h.create_group(key)
            for k, v in value.items():
                sub.attrs[k] = v
        else:
            h[key] = np.asarray(value)


def save(model: RBModel, path: str | os.PathLike, *, comm: MPI.Comm | None = None,
         include_basis: bool = True, **provenance: Any) -> None:
    """Write the model to ``path`` atomically (collective over ``comm``).

    Parameters
    ----------
    model : from :func:`rom.interp.build_rb` (basis rows distributed over ``comm``)
    path : destination HDF5 file (replaced on success only)
    include_basis : store the (N, n) basis (needed for ``result.field``)
    **provenance : extra attributes (e.g. ``case_hash=...``), see ``stamp_provenance``
    """
    comm = as_comm(comm)
    basis = gather_rows(model.basis, comm) if include_basis and model.basis is not None else None
    with atomic_h5(path, comm=comm) as f:
        if f is not None:
            g = f.create_group("interp")
            write_group(g, model, basis)
            stamp_provenance(f, schema=SCHEMA, schema_version=SCHEMA_VERSION,
                             writer_ranks=comm.size, **provenance)


def read_group(group: h5py.Group, *, problem: LinearProblem | None = None,
               coercivity: Coercivity | None = None) -> RBModel:
    """Read a model from an open group (serial). See :func:`load`."""
    if group.attrs.get("schema") != SCHEMA:
        raise ValueError(f"{group.file.filename}:{group.name}: not a '{SCHEMA}' group")
    version = int(group.attrs["schema_version"])
    if version > SCHEMA_VERSION:
        raise ValueError(f"{group.file.filename}: schema version {version} is newer than "
                         f"this reader ({SCHEMA_VERSION}); update rom")
    eims = []
    for name, cls in (("matrix_eim", MatrixEIM), ("rhs_eim", VectorEIM)):
        g = group[name]
        kw = {k: g[k][()] for k in _EIM}
        kw.update(scale=float(g.attrs["scale"]), n_rows=int(g.attrs["n_rows"]))
        if cls is MatrixEIM:
            kw.update(magic_cols=g["magic_cols"][()], n_cols=int(g.attrs["n_cols"]))
        eims.append(cls(**kw))
    if coercivity is None:
        if group.attrs["coercivity_kind"] == "min_theta":
            coercivity = MinTheta(tuple(float(v) for v in group.attrs["coercivity_reference"]))
        elif group.attrs["coercivity_kind"] == "callable":
            raise ValueError(f"{group.file.filename}: the model was built with a callable "
                             "coercivity bound; pass coercivity=... to load()")
        else:
            coercivity = float(group.attrs["coercivity"])
    e = group["estimator"]
    est = OnlineEstimator(**{k: e[k][()] for k in ("gram", "P", "B", "Lt")})
    history: dict[str, Any] = {}
    for k, v in (group["history"].items() if "history" in group else []):
        history[k] = dict(v.attrs) if isinstance(v, h5py.Group) else v[()]
    return RBModel(eims[0], eims[1], group["reduced_matrices"][()], group["reduced_rhs"][()],
                   est, coercivity, basis=group["basis"][()] if "basis" in group else None,
                   problem=problem, estimator=str(group.attrs["estimator"]), history=history)


def load(path: str | os.PathLike, *, problem: LinearProblem | None = None,
         coercivity: Coercivity | None = None, group: str = "interp") -> RBModel:
    """Load a model for online use (serial).

    Parameters
    ----------
    path : file written by :func:`save` (or a reduced-model file with an ``interp`` group)
    problem : the user's solver hooks for the magic values of new parameters (can also be
        given later with ``model.attach``)
    coercivity : required if the model was built with a callable coercivity bound
    """
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path}: no such reduced-model file")
    with h5py.File(path, "r") as f:
        if group not in f:
            raise ValueError(f"{path}: no '{group}' group (not an operator-interpolation model)")
        return read_group(f[group], problem=problem, coercivity=coercivity)

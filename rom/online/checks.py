"""Checks of a reduced-model file when it is read, and of the case it was built for.

:func:`open_checked` opens a reduced-model or local reduced-models file and checks it
whole before anything uses it (:func:`check_model_file`): the schema, every dataset's
presence, the shapes (with each other and with the sizes in ``meta``), the index ranges,
the ``meta`` and ``material`` JSON, and that every float array is finite (read in slabs of
bounded size). Every failure is a :class:`~rom.parallel.UserError` that names the file and
the dataset; a file that is not HDF5, or truncated, too.

:func:`case_hashes` are the hashes of the case sections a model depends on (mesh file,
material, loading, time grid), stored in the model's ``meta`` at the build;
:func:`check_case` refuses a model whose sections differ from the case's (a model built
for the case before its material or mesh changed) and warns when the model has none.
"""
from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import os
import warnings
from collections.abc import Iterator
from pathlib import Path

import h5py
import numpy as np

from ..io.atomic import check_schema
from ..io.snapshots import nonfinite
from ..parallel import UserError

__all__ = ["SECTIONS", "case_hashes", "check_case", "check_model_file", "check_model_group",
           "open_checked"]

#: the case sections a reduced model depends on (keys of ``meta["case_hashes"]``)
SECTIONS = ("mesh", "material", "loading", "times")
#: ``meta`` keys every reduced model has (sizes and names the arrays are checked against)
META_KEYS = ("n_qp", "n_nodes", "n_state", "p_column", "state_names", "mesh_file")
MODEL_SCHEMA = "rom.online.reduced_model"
LOCAL_SCHEMA = "rom.online.local_models"


@contextlib.contextmanager
def open_checked(path: str | os.PathLike) -> Iterator[h5py.File]:
    """Open the reduced-model file ``path`` read-only, checked whole
    (:func:`check_model_file`); a :class:`UserError` names the file and what is wrong
    (not found, not HDF5 or truncated, a dataset missing, ...)."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"reduced model file {path} not found")
    try:
        f = h5py.File(path, "r")
    except OSError as exc:
        raise UserError(f"{path}: not a readable HDF5 file (truncated or not a reduced "
                        f"model: {exc})") from None
    with f:
        check_model_file(f, path)
        yield f


def check_model_file(f: h5py.File, path: str | os.PathLike) -> None:
    """Raise a :class:`UserError` naming ``path`` unless the open file ``f`` is a complete,
    consistent reduced model (:func:`check_model_group`) or local reduced-models file (each
    ``model_<c>`` group, the selector and the transfer matrices)."""
    from .local import SCHEMA_VERSION as LOCAL_VERSION
    from .model import SCHEMA_VERSION
    try:
        if f.attrs.get("schema") == LOCAL_SCHEMA:
            check_schema(f, path, LOCAL_SCHEMA, LOCAL_VERSION, "a local reduced-models file")
            k = _attr_int(f, "k", path)
            _meta(f, path, "")
            for c in range(k):  # loop over the local models
                check_model_group(_group(f, f"model_{c}", path), path)
            for name in ("selector", "transfer"):
                _finite_group(_group(f, name, path), path)
        else:
            check_schema(f, path, MODEL_SCHEMA, SCHEMA_VERSION, "a reduced model")
            check_model_group(f, path)
    except (OSError, KeyError, RuntimeError) as exc:     # h5py's errors on a damaged file
        raise UserError(f"{path}: cannot be read ({type(exc).__name__}: {exc}); the file is "
                        "damaged: build it again with python -m rom.offline") from None


def check_model_group(g: h5py.Group, path: str | os.PathLike) -> None:
    """Raise a :class:`UserError` naming ``path`` and the dataset unless group ``g`` holds
    the reduced-model layout (:mod:`rom.online.model`): every dataset of ``full`` and
    ``reduced``, shapes consistent with each other and with ``meta``, indices in range,
    finite reduced data and singular values, and readable ``meta`` and ``material``
    attributes. The full-size arrays are not read here (``rom.load`` reads none of them):
    each rank checks its rows when it reads them (:class:`rom.linalg.rowblocks.RowBlocks`)."""
    from .model import FULL, REDUCED
    meta = _meta(g, path, g.name)
    _json_attr(g, "material", path, g.name)
    missing = [k for k in META_KEYS if k not in meta]
    if missing:
        raise UserError(f"{path}: {_where(g, 'meta')}: missing {', '.join(missing)}")
    d = {f"full/{k}": _dataset(g, f"full/{k}", path) for k in FULL}
    d.update({f"reduced/{k}": _dataset(g, f"reduced/{k}", path) for k in REDUCED})
    n_qp, n_nodes, n_state = (int(meta[k]) for k in ("n_qp", "n_nodes", "n_state"))
    n = _shape(d, "full/phi", path, g, (3 * n_nodes, None))[1]
    k = _shape(d, "full/psi_p", path, g, (n_qp, None))[1]
    q = _shape(d, "reduced/points", path, g, (None,))[0]
    n_en = _shape(d, "reduced/nodes", path, g, (q, None))[1]
    expected = {"full/phi_sv": (n,), "full/psi_p_sv": (k,), "full/psi_z": (n_qp * n_state, None),
                "full/psi_z_sv": (None,), "full/sigma": (6 * n_qp, None),
                "full/f_unit": (3 * n_nodes,), "full/weights_fe": (n_qp,),
                "reduced/weights": (q,), "reduced/imposed": (None,), "reduced/eps": (q, 6, n),
                "reduced/shape": (q, n_en), "reduced/node_coords": (q, n_en, 3),
                "reduced/f_red": (n,)}
    for name, shape in expected.items():
        _shape(d, name, path, g, shape)
    for name, top in (("reduced/points", n_qp), ("reduced/imposed", n_qp),
                      ("reduced/nodes", n_nodes)):
        a = d[name][()]
        if a.size and (a.min() < 0 or a.max() >= top):
            raise UserError(f"{path}: {_where(g, name)}: indices outside 0..{top - 1} "
                            f"(the model's {'points' if top == n_qp else 'nodes'})")
    w = d["reduced/weights"][()]
    if np.any(w < 0):
        raise UserError(f"{path}: {_where(g, 'reduced/weights')}: {int(np.sum(w < 0))} negative "
                        f"reduced weight(s) (an ECM quadrature has weights >= 0)")
    for name, dset in d.items():      # the full-size arrays: by rows when read (RowBlocks)
        if name.startswith("reduced/") or name.endswith("_sv"):
            _finite(dset, path, _where(g, name))


def case_hashes(case) -> dict[str, str]:
    """SHA-256 (hex) of the case sections a reduced model depends on (:data:`SECTIONS`):
    the mesh file's content, the ``material:`` and ``loading:`` sections (without the time
    grid), and the time grid ``loading.times``."""
    loading = dataclasses.asdict(case.loading) if case.loading is not None else None
    times = loading.pop("times", None) if loading is not None else None
    digest = hashlib.sha256()
    with open(case.mesh, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):  # loop over 1 MB pieces
            digest.update(chunk)
    material = dataclasses.asdict(case.material) if case.material is not None else None
    if material is not None:       # keys added after models recorded hashes: out at default
        default = dataclasses.asdict(type(case.material)())
        for key in _LATER_MATERIAL_KEYS:
            if material.get(key) == default[key]:
                del material[key]
    return {"mesh": digest.hexdigest(), "material": _hash(material),
            "loading": _hash(loading), "times": _hash(times)}


#: material keys added after models first recorded their case hashes: hashed only when set
_LATER_MATERIAL_KEYS = ("sigma_y", "Q", "b", "C1", "D1", "C2", "D2", "parameters")


def check_case(meta: dict, case, path: str | os.PathLike) -> None:
    """Refuse (:class:`UserError`) the reduced model ``path`` (its ``meta``) when the case
    sections it was built from differ from ``case``'s (:func:`case_hashes`): the message
    names the sections and how to rebuild. A model without hashes (built before they were
    stored) gets a warning."""
    stored = meta.get("case_hashes")
    where = getattr(case, "source_file", None) or "the case"
    if not stored:
        warnings.warn(f"{path}: the reduced model does not record the case it was built for "
                      f"(an older file): it cannot be checked against {where}; rebuild it "
                      f"with python -m rom.offline {where} to be sure", stacklevel=3)
        return
    now = case_hashes(case)
    differ = [s for s in SECTIONS if s in stored and stored[s] != now[s]]
    if differ:
        raise UserError(f"{path}: the reduced model was built for another "
                        f"{', '.join(differ)} than {where}'s (the case changed since the "
                        f"build, or the model belongs to another case); rebuild it with "
                        f"python -m rom.offline {where}")


# ---------------------------------------------------------------- helpers
def _hash(value) -> str:
    text = json.dumps(value, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def _where(g: h5py.Group, name: str) -> str:
    prefix = g.name.strip("/")
    return f"{prefix}/{name}" if prefix else name


def _group(f: h5py.Group, name: str, path) -> h5py.Group:
    item = f.get(name)
    if not isinstance(item, h5py.Group):
        raise UserError(f"{path}: group {_where(f, name)} is missing")
    return item


def _dataset(g: h5py.Group, name: str, path) -> h5py.Dataset:
    item = g.get(name)
    if not isinstance(item, h5py.Dataset):
        raise UserError(f"{path}: dataset {_where(g, name)} is missing")
    return item


def _attr_int(g: h5py.Group, name: str, path) -> int:
    try:
        value = int(g.attrs[name])
    except (KeyError, TypeError, ValueError):
        raise UserError(f"{path}: attribute {name!r} is missing or not an integer") from None
    if value < 1:
        raise UserError(f"{path}: attribute {name!r} is {value}, expected >= 1")
    return value


def _json_attr(g: h5py.Group, name: str, path, where: str):
    text = g.attrs.get(name)
    label = f"{where.strip('/')}/{name}" if where.strip("/") else name
    if text is None:
        raise UserError(f"{path}: attribute {label!r} is missing")
    try:
        return json.loads(text)
    except (TypeError, ValueError) as exc:
        raise UserError(f"{path}: attribute {label!r} is not valid JSON ({exc})") from None


def _meta(g: h5py.Group, path, where: str) -> dict:
    meta = _json_attr(g, "meta", path, where)
    if not isinstance(meta, dict):
        raise UserError(f"{path}: attribute 'meta' is not a JSON object")
    return meta


def _shape(d: dict, name: str, path, g, want: tuple) -> tuple:
    """The shape of ``d[name]``, checked against ``want`` (``None``: any size)."""
    shape = d[name].shape
    if len(shape) != len(want) or any(w is not None and s != w for s, w in zip(shape, want)):
        show = "(" + ", ".join("*" if w is None else str(w) for w in want) + \
            ("," if len(want) == 1 else "") + ")"
        raise UserError(f"{path}: dataset {_where(g, name)} has shape {shape}, expected "
                        f"{show} (from the model's other datasets and meta)")
    return shape


def _finite(dset: h5py.Dataset, path, where: str) -> None:
    if dset.dtype.kind != "f":
        return
    found = nonfinite(dset)
    if found is not None:
        raise UserError(f"{path}: dataset {where} holds {found[1]} NaN and {found[2]} Inf "
                        f"value(s) (the first in row {found[0]})")


def _finite_group(g: h5py.Group, path) -> None:
    for name, item in g.items():  # loop over the group's datasets
        if isinstance(item, h5py.Dataset):
            _finite(item, path, _where(g, name))

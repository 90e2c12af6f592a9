"""Case files: ``case.yaml`` loaded with ``yaml.safe_load`` into validated dataclasses.

Every mistake is one :class:`CaseError` that names the file and the key
(``case.yaml: pod.rtol: expected a number in (0, 1), got 2.0``). Unknown keys are
errors (with a suggestion); nothing that changes the numbers is silently
defaulted: defaults are the documented values below (docs/case-file.md).
Relative paths in a case are relative to the directory of the case file.
"""
from __future__ import annotations

import dataclasses
import difflib
import hashlib
import math
import os
import reprlib
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from .parallel import UserError

__all__ = ["CaseError", "Case", "load_case", "case_from_dict", "parse_yaml", "read_case_mapping"]

SCHEMA_VERSION = 1


class CaseError(UserError, ValueError):
    """An invalid case file; the message names the file and the key."""


# --------------------------------------------------------------------------- schema
# Field metadata: "doc" (one line for the reference), "range" ((lo, hi, lo_open, hi_open)),
# "path" (True: resolved relative to the case directory; "exists": must exist).

def _f(default=dataclasses.MISSING, *, doc: str, range=None, path=None, factory=None):
    meta = {"doc": doc, "range": range, "path": path}
    if factory is not None:
        return field(default_factory=factory, metadata=meta)
    return field(default=default, metadata=meta)


@dataclass(frozen=True)
class TimeGrid:
    start: float = _f(0.0, doc="first time [s]")
    stop: float = _f(1.0, doc="last time [s]")
    steps: int = _f(10, doc="number of time steps after the start", range=(1, None, False, False))

    def _validate(self) -> tuple[str, str] | None:
        """(key, message) of a cross-key mistake, or None (called by the loader)."""
        if not self.stop > self.start:
            return "stop", (f"must be greater than start = {self.start:g} s (the times "
                            f"increase), got {self.stop:g} s")
        return None

    def array(self):
        """The ``steps + 1`` equally spaced times [s], the start included (numpy array)."""
        import numpy as np
        return np.linspace(self.start, self.stop, self.steps + 1)


@dataclass(frozen=True)
class ParameterRange:
    min: float = _f(doc="lower bound")
    max: float = _f(doc="upper bound")


@dataclass(frozen=True)
class AnalyticalSource:
    family: Literal["goodier_hotspot"] = _f(
        "goodier_hotspot", doc="analytical field family (docs/case-file.md lists them)")
    parameters: dict[str, ParameterRange] = _f(
        doc="parameter ranges sampled for training loadings", factory=dict)
    samples: int = _f(12, doc="number of training loadings (Halton sequence)",
                      range=(1, None, False, False))
    seed: int = _f(0, doc="scrambling seed of the Halton sequence", range=(0, None, False, False))
    times: TimeGrid = _f(doc="time steps of each loading", factory=TimeGrid)


@dataclass(frozen=True)
class SnapshotsConfig:
    store: Path = _f(doc="snapshot store (HDF5); written by the analytical/files sources", path=True)
    source: Literal["analytical", "files", "store"] = _f(
        "store", doc="where snapshots come from: an existing store, meshio files, or a formula")
    analytical: AnalyticalSource | None = _f(None, doc="formula source (source: analytical)")
    files: list[str] = _f(doc="meshio-readable files, glob patterns allowed (source: files)",
                          factory=list)
    fields: list[str] = _f(doc="fields to import from files (default: all point/cell data)",
                           factory=list)
    precision: Literal["double", "single"] = _f(
        "double", doc="storage of the quadrature fields python -m rom.fom writes (stress, "
                      "internal variables, strain): float64, or float32 for half their size; "
                      "displacement and temperature stay float64 (docs/snapshots.md)")
    strain: bool = _f(False, doc="python -m rom.fom also stores the total strain (quadrature, "
                                 "6 per point), which no offline stage reads")


@dataclass(frozen=True)
class PODConfig:
    field: str = _f("displacement", doc="snapshot field reduced by POD")
    method: Literal["snapshots", "tsqr", "randomized"] = _f("snapshots", doc="POD algorithm")
    rtol: float = _f(1e-4, doc="relative energy tolerance eps: sum_{i>n} s_i^2 <= eps^2 sum s_i^2",
                     range=(0.0, 1.0, True, True))
    max_modes: int | None = _f(None, doc="upper bound on the number of modes",
                               range=(1, None, False, False))
    product: Literal["euclidean", "lumped_mass"] = _f(
        "euclidean", doc="inner product: Euclidean, or the lumped mass matrix of the mesh")


@dataclass(frozen=True)
class ClusteringConfig:
    k: int = _f(doc="number of clusters (local bases)", range=(1, None, False, False))
    dissimilarity: Literal["sine", "euclidean", "grassmann", "chordal", "projection"] = _f(
        "sine", doc="dissimilarity between snapshots (sine of the angle) or simulations")
    level: Literal["snapshots", "simulations"] = _f(
        "snapshots", doc="cluster single snapshots, or whole simulations (one per loading)")
    overlap: float = _f(0.0, doc="fraction of each cluster's size added from its nearest "
                                 "neighbours in other clusters", range=(0.0, None, False, False))
    seed: int = _f(0, doc="seed of the k-medoids++ initialization", range=(0, None, False, False))


@dataclass(frozen=True)
class OutputConfig:
    directory: Path = _f(Path("out"), doc="output directory", path=True)
    write_modes: bool = _f(True, doc="write the modes on the mesh (VTU) for ParaView")
    plot: bool = _f(True, doc="write a PNG of the singular values (needs matplotlib)")


from .fom.config import FOMConfig, LoadingConfig, MaterialConfig  # noqa: E402  (uses _f, TimeGrid)
from .interp.config import InterpConfig  # noqa: E402
from .online.config import OnlineConfig  # noqa: E402
from .study.config import StudyConfig  # noqa: E402


@dataclass(frozen=True)
class Case:
    name: str = _f(doc="case name, used in output file names")
    mesh: Path | None = _f(None, doc="mesh file, any format meshio reads (needed by snapshots)",
                           path="exists")
    snapshots: SnapshotsConfig | None = _f(None, doc="snapshot source and store (POD stage)")
    description: str = _f("", doc="free text")
    pod: PODConfig = _f(doc="proper orthogonal decomposition", factory=PODConfig)
    clustering: ClusteringConfig | None = _f(
        None, doc="local reduced bases by clustering the snapshots (docs/local-bases.md)")
    output: OutputConfig = _f(doc="where results go", factory=OutputConfig)
    material: MaterialConfig | None = _f(None, doc="constitutive law (python -m rom.fom)")
    loading: LoadingConfig | None = _f(
        None, doc="boundary conditions, loads and time steps (python -m rom.fom)")
    fom: FOMConfig | None = _f(None, doc="full-order solver: loadings, PETSc options, Newton, heat")
    interp: InterpConfig | None = _f(None, doc="nonintrusive operator interpolation (docs/interp.md)")
    online: OnlineConfig | None = _f(None, doc="adaptive reduced model (docs/online.md)")
    study: StudyConfig | None = _f(None, doc="held-out queries checked against the full-order "
                                             "solver, report (python -m rom.study)")
    # provenance, filled by the loader
    source_file: Path | None = field(default=None, compare=False, metadata={"internal": True})
    source_hash: str = field(default="", compare=False, metadata={"internal": True})


# --------------------------------------------------------------------------- loader
def load_case(path: str | Path) -> Case:
    """Load and validate a case file.

    Parameters
    ----------
    path : the YAML file.

    Raises
    ------
    CaseError : missing/unreadable file, YAML syntax error, unknown key, wrong
        type, value out of range, or missing referenced file; the message names
        the file and the key.
    """
    path = Path(path)
    data, digest = _read_yaml(path, chain=())
    case = case_from_dict(data, source=path)
    _check_stages(case, path)
    return dataclasses.replace(case, source_file=path.resolve(), source_hash=digest.hexdigest())


def read_case_mapping(path: str | Path) -> dict:
    """The raw mapping of a case file with its ``extends:`` chain merged in (not validated:
    for readers of sections :class:`Case` does not know, e.g. ``python -m rom.fom``)."""
    data = _read_yaml(Path(path), chain=())[0]
    if not isinstance(data, dict):
        raise CaseError(f"{path}: expected a mapping at the top level")
    return data


def _read_yaml(path: Path, chain: tuple) -> tuple[Any, Any]:
    """The case file's mapping with its ``extends:`` chain merged in, and a hash of every
    file of the chain. ``extends: other.yaml`` (relative to this file) takes that case and
    overrides it key by key: mappings merge recursively, any other value (lists included)
    replaces the base's; relative paths of the result resolve against the extending file."""
    if not path.is_file():
        where = f" (extended by {chain[-1]})" if chain else ""
        raise CaseError(f"{path}: case file not found{where}")
    if path.resolve() in chain:
        raise CaseError(f"{path}: extends: circular chain {' -> '.join(map(str, chain))}")
    text = path.read_bytes()
    data = parse_yaml(text, path)
    digest = hashlib.sha256(text)
    if not isinstance(data, dict) or "extends" not in data:
        return data, digest
    data = dict(data)
    parent = data.pop("extends")
    if not isinstance(parent, str) or not parent:
        raise CaseError(f"{path}: extends: expected the path of a case file, got {parent!r}")
    base, base_digest = _read_yaml(path.parent / parent, chain + (path.resolve(),))
    if not isinstance(base, dict):
        raise CaseError(f"{path.parent / parent}: expected a mapping at the top level")
    digest.update(base_digest.digest())
    return _merge(base, data), digest


#: most nodes a case file may hold with its aliases expanded (the bundled cases: < 5,000)
MAX_YAML_NODES = 200_000


class _CaseLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` that refuses duplicate keys in a mapping (with their line), and
    whose documents are checked by :func:`parse_yaml` before anything is constructed."""

    def construct_mapping(self, node, deep=False):
        if isinstance(node, yaml.MappingNode):
            seen: dict = {}
            for key_node, _ in node.value:   # loop over the mapping's keys
                if key_node.tag == "tag:yaml.org,2002:merge":
                    continue                 # '<<: *base' merges; its keys may be overridden
                key = self.construct_object(key_node, deep=True)
                line = key_node.start_mark.line + 1
                try:
                    if key in seen:
                        raise _DuplicateKey(key, line, seen[key])
                    seen[key] = line
                except TypeError:            # unhashable key: reported by SafeLoader
                    continue
        return super().construct_mapping(node, deep=deep)


class _DuplicateKey(Exception):
    def __init__(self, key, line: int, first: int):
        super().__init__(key, line, first)
        self.key, self.line, self.first = key, line, first


def parse_yaml(text: bytes | str, path: str | Path) -> Any:
    """The one YAML reader of case files: safe tags only, no duplicate keys, and at most
    :data:`MAX_YAML_NODES` nodes with aliases expanded (a 3 kB alias chain can stand for
    billions of values that any walk of the document, even its ``repr``, would expand).

    Raises
    ------
    CaseError : YAML syntax error, an unsafe tag, a duplicate key (named with its lines),
        a recursive alias, or a document that expands to too many nodes; names ``path``.
    """
    loader = None
    try:
        loader = _CaseLoader(text)             # reads the encoding: may raise ReaderError
        node = loader.get_single_node()
        if node is None:
            return None
        size = _expanded_size(node, {}, set())
        if size > MAX_YAML_NODES:
            raise CaseError(f"{path}: the document expands to more than {MAX_YAML_NODES:,} "
                            "values (aliases of aliases?); a case file is not that large")
        return loader.construct_document(node)
    except _DuplicateKey as exc:
        raise CaseError(f"{path}: line {exc.line}: duplicate key {_show(exc.key)} (first at "
                        f"line {exc.first}); give each key once") from None
    except yaml.YAMLError as exc:              # one line: the message names line and column
        raise CaseError(f"{path}: not valid YAML: {' '.join(str(exc).split())}") from None
    except RecursionError:
        raise CaseError(f"{path}: not valid YAML: nested too deeply") from None
    finally:
        if loader is not None:
            loader.dispose()


def _expanded_size(node, sizes: dict, active: set) -> int:
    """Number of nodes of ``node`` with every alias expanded (memoized per node; aliases
    share nodes, so this costs one visit per distinct node)."""
    key = id(node)
    if key in sizes:
        return sizes[key]
    if key in active:
        raise yaml.YAMLError("a recursive alias (a node that contains itself)")
    if isinstance(node, yaml.ScalarNode):
        return 1
    active.add(key)
    children = [c for pair in node.value for c in pair] \
        if isinstance(node, yaml.MappingNode) else node.value
    total = 1
    for child in children:  # loop over the node's children (aliases count again)
        total += _expanded_size(child, sizes, active)
        if total > MAX_YAML_NODES:
            break
    active.discard(key)
    sizes[key] = total
    return total


def _merge(base: dict, over: dict) -> dict:
    out = dict(base)
    for key, value in over.items():  # loop over overriding keys
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


def _check_stages(case: Case, path: Path) -> None:
    """Cross-key rules: what the offline stage needs to have something to do."""
    if case.snapshots is None and case.interp is None and case.fom is None:
        raise CaseError(f"{path}: <top level>: nothing to do: give 'snapshots' (POD), "
                        "'interp' (operator interpolation) or 'fom' (full-order solver)")
    if case.fom is not None and case.snapshots is None:
        raise CaseError(f"{path}: snapshots: required key is missing (the full-order solver "
                        "writes its snapshots to snapshots.store)")
    if case.online is not None and (case.snapshots is None or case.material is None):
        raise CaseError(f"{path}: online: needs 'snapshots' and 'material' (the reduced model "
                        "is built from full-order snapshots and calls the same material law)")
    if case.study is not None and (case.online is None or case.fom is None):
        raise CaseError(f"{path}: study: needs 'online' (the reduced model) and 'fom' (the "
                        "full-order solver that checks it)")
    if case.clustering is not None and case.snapshots is None:
        raise CaseError(f"{path}: clustering: needs 'snapshots' (the snapshots it clusters)")
    if case.snapshots is not None and case.fom is None:
        for key, default in (("precision", "double"), ("strain", False)):
            if getattr(case.snapshots, key) != default:
                raise CaseError(f"{path}: snapshots.{key}: says how python -m rom.fom writes "
                                "the store, and the case has no 'fom' section")
    if case.snapshots is not None and case.mesh is None:
        raise CaseError(f"{path}: mesh: required key is missing (the snapshots live on a mesh)")


def case_from_dict(data: Any, *, source: str | Path = "<dict>") -> Case:
    """Validate a plain dict (as read from YAML) into a :class:`Case`."""
    base = Path(source).resolve().parent if source != "<dict>" else Path.cwd()
    ctx = _Ctx(str(source), base)
    return ctx.build(Case, data, "")


@dataclass
class _Ctx:
    file: str
    base: Path

    def error(self, key: str, msg: str) -> CaseError:
        return CaseError(f"{self.file}: {key or '<top level>'}: {msg}")

    def build(self, cls: type, data: Any, key: str):
        if data is None:
            data = {}
        if not isinstance(data, dict):
            raise self.error(key, f"expected a mapping of keys, got {_show(data)}")
        hints = typing.get_type_hints(cls)
        fields = {f.name: f for f in dataclasses.fields(cls) if not f.metadata.get("internal")}
        for k in data:
            if k not in fields:
                near = difflib.get_close_matches(str(k), list(fields), n=1)
                hint = f" (did you mean '{near[0]}'?)" if near else \
                    f" (allowed: {', '.join(sorted(fields))})"
                raise self.error(_join(key, str(k)), f"unknown key{hint}")
        values = {}
        for name, f in fields.items():
            sub = _join(key, name)
            if name not in data:
                if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                    raise self.error(sub, "required key is missing")
                continue
            values[name] = self.convert(hints[name], data[name], sub, f.metadata)
        out = cls(**values)
        problem = out._validate() if hasattr(cls, "_validate") else None
        if problem is not None:
            raise self.error(_join(key, problem[0]), problem[1])
        return out

    def convert(self, tp: Any, value: Any, key: str, meta: dict):
        origin = typing.get_origin(tp)
        args = typing.get_args(tp)
        if origin in (typing.Union, types.UnionType):
            if value is None and type(None) in args:
                return None
            (inner,) = [a for a in args if a is not type(None)]
            return self.convert(inner, value, key, meta)
        if origin is Literal:
            if value not in args:
                raise self.error(key, f"expected one of {', '.join(map(repr, args))}, "
                                      f"got {_show(value)}")
            return value
        if origin is list:
            if not isinstance(value, list):
                raise self.error(key, f"expected a list, got {_show(value)}")
            return [self.convert(args[0], v, f"{key}[{i}]", {}) for i, v in enumerate(value)]
        if origin is dict:
            if not isinstance(value, dict):
                raise self.error(key, f"expected a mapping, got {_show(value)}")
            if args[1] is str:   # option tables (PETSc): YAML numbers and booleans as text
                value = {k: (str(v).lower() if isinstance(v, bool) else
                             repr(v) if isinstance(v, (int, float)) else v)
                         for k, v in value.items()}
            return {str(k): self.convert(args[1], v, _join(key, str(k)), {})
                    for k, v in value.items()}
        if dataclasses.is_dataclass(tp):
            return self.build(tp, value, key)
        if tp is bool:
            if not isinstance(value, bool):
                raise self.error(key, f"expected true or false, got {_show(value)}")
            return value
        if tp is int:
            if isinstance(value, bool) or not isinstance(value, int):
                raise self.error(key, f"expected an integer, got {_show(value)}")
            self.check_range(value, key, meta)
            return value
        if tp is float:
            if isinstance(value, str):  # YAML 1.1 reads 1e-4 (no dot) as a string
                try:
                    value = float(value)
                except ValueError:
                    raise self.error(key, f"expected a number, got {_show(value)}") from None
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise self.error(key, f"expected a number, got {_show(value)}")
            value = float(value)
            if not math.isfinite(value):
                raise self.error(key, f"expected a finite number, got {value}")
            self.check_range(value, key, meta)
            return value
        if tp is str:
            if not isinstance(value, str):
                raise self.error(key, f"expected a string, got {_show(value)}")
            return value
        if tp is Path:
            if not isinstance(value, str) or not value:
                raise self.error(key, f"expected a file path, got {_show(value)}")
            p = Path(value).expanduser()
            p = Path(os.path.normpath(p if p.is_absolute() else self.base / p))
            if meta.get("path") == "exists" and not p.exists():
                raise self.error(key, f"file not found: {p}")
            return p
        raise TypeError(f"config schema: unsupported type {tp!r} at {key}")  # programming error

    def check_range(self, value: float, key: str, meta: dict) -> None:
        rng = meta.get("range")
        if not rng:
            return
        lo, hi, lo_open, hi_open = rng
        bad = (lo is not None and (value < lo or (lo_open and value == lo))) or \
              (hi is not None and (value > hi or (hi_open and value == hi)))
        if bad:
            left = "(" if lo_open else "["
            right = ")" if hi_open else "]"
            lo_s = "-inf" if lo is None else f"{lo:g}"
            hi_s = "inf" if hi is None else f"{hi:g}"
            raise self.error(key, f"expected a value in {left}{lo_s}, {hi_s}{right}, got {value:g}")


def _join(key: str, name: str) -> str:
    return f"{key}.{name}" if key else name


#: repr of values in messages: a few items per level, a few levels (never a whole document)
_REPR = reprlib.Repr()
for _name in ("maxtuple", "maxlist", "maxarray", "maxdict", "maxset", "maxfrozenset",
              "maxdeque"):
    setattr(_REPR, _name, 4)
_REPR.maxlevel, _REPR.maxstring, _REPR.maxlong, _REPR.maxother = 3, 60, 40, 60


def _show(value: Any) -> str:
    """A value for an error message: its repr shortened to 60 characters, built from at
    most a few items per level (the repr of a large value is never formed whole)."""
    s = _REPR.repr(value)
    return (s if len(s) <= 60 else s[:57] + "...") + f" ({type(value).__name__})"


def schema_reference() -> str:
    """The case-file reference (Markdown), generated from the schema (docs/case-file.md)."""
    lines: list[str] = []

    def walk(cls, prefix):
        hints = typing.get_type_hints(cls)
        for f in dataclasses.fields(cls):
            if f.metadata.get("internal"):
                continue
            key = _join(prefix, f.name)
            tp = hints[f.name]
            required = f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
            if required:
                default = "required"
            elif f.default is not dataclasses.MISSING:
                default = "null" if f.default is None else repr(f.default)
            else:
                made = f.default_factory()
                default = "(keys below)" if dataclasses.is_dataclass(made) else repr(made)
            if isinstance(f.default, Path):
                default = repr(str(f.default))
            lines.append(f"| `{key}` | `{_type_name(tp)}` | {default} | {f.metadata.get('doc', '')} |")
            inner = [a for a in (typing.get_args(tp) or (tp,)) if dataclasses.is_dataclass(a)]
            if typing.get_origin(tp) is dict:
                inner = [a for a in typing.get_args(tp) if dataclasses.is_dataclass(a)]
                for a in inner:
                    walk(a, key + ".<name>")
                continue
            for a in inner:
                walk(a, key)

    walk(Case, "")
    head = "| key | type | default | meaning |\n|---|---|---|---|"
    return head + "\n" + "\n".join(lines) + "\n"


def _type_name(tp: Any) -> str:
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin is Literal:
        return " \\| ".join(map(str, args))
    if origin in (typing.Union, types.UnionType):
        return " \\| ".join("null" if a is type(None) else _type_name(a) for a in args)
    if origin is list:
        return f"list[{_type_name(args[0])}]"
    if origin is dict:
        return f"map[{_type_name(args[1])}]"
    if dataclasses.is_dataclass(tp):
        return "mapping"
    return {Path: "path", float: "float", int: "int", str: "str", bool: "bool"}.get(tp, str(tp))

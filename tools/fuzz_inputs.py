"""Fuzz the inputs of rom: mutated case files and mutated reduced-model files (by hand,
not in CI; issue 29).

Every mutation is checked in a child interpreter (rom imported once, its address space
limited to 3 GB) with a timeout per mutation, and classified:

- ``clear``   one clear error: a :class:`rom.parallel.UserError` (the loaders' and
              validators' errors; ``FileNotFoundError`` too) with a one-line message
- ``crash``   any other exception (its type, message and where), or a multi-line message
- ``hang``    no answer within the timeout (the child is killed and a new one started)
- ``garbage`` accepted although the mutation must be refused (silent garbage)
- ``ok``      accepted, and the mutation is valid or neutral (a control, a benign alias, a
              value the schema allows)

Case files (``cases/*/*.yaml``): syntax breakers, wrong types, NaN/inf, out-of-range and
huge numbers, negative temperatures, deleted keys, YAML aliases (benign, recursive,
bombs), duplicate keys, formula injections. A mutated file is written into a temporary
copy of its case directory (other files linked) and checked as ``rom.fom`` and
``rom.offline`` check a case before running: ``rom.config.load_case``, and with a ``fom:``
section ``rom.fom.run.load_fom_case``, with a ``study:`` section its query list. The
expectation of a value mutation comes from the case schema (type, range, required keys).
A file whose unmutated control is refused (e.g. a mesh that ``make_mesh.py`` writes
first) is reported and skipped.

Model files: truncation, not HDF5, each dataset under ``full/`` and ``reduced/`` deleted,
the ``meta`` JSON attribute broken, ``reduced/weights`` cut to 40 entries, NaN/inf in
``reduced/eps``, ``reduced/weights`` and ``full/phi``; each is ``rom.load``-ed and solved
for two steps. Give a model with ``--model`` or let the script build the CI-size
``cases/plate_creep`` model (a minute; needs PETSc).

Usage::

    python tools/fuzz_inputs.py cases [--per-file 45] [--timeout 60]
    python tools/fuzz_inputs.py models [--model out/plate_creep/plate_creep.rom.h5]
    python tools/fuzz_inputs.py all --json fuzz.json
"""
from __future__ import annotations

import argparse
import copy
import dataclasses
import json
import os
import random
import resource
import shutil
import subprocess
import sys
import tempfile
import time
import typing
from dataclasses import dataclass
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

#: formulas that must never be accepted (code execution, constructs outside the language,
#: a constant part that overflows, unknown names)
INJECTIONS = [
    "[c for c in ().__class__.__bases__[0].__subclasses__() if c.__name__=='catch_warnings']"
    "[0]()._module.__builtins__['__import__']('os').system('touch pwned')+900",
    "__import__('os').system('touch pwned')",
    "x.__class__.__mro__",
    "open('pwned', 'w')",
    "(lambda: 900)()",
    "[900 for _ in range(10**9)]",
    "x[0] + 900",
    "900 + 0*x + 0*9**9**10",
    "exec('import os')",
    "clip(x, a_min=900)",
    "900 if x.__class__ else 0",
    "'900'",
    "getattr(x, '__class__')",
    "sin(*x)",
    "globals()",
]
#: a query of the model-file mode (plate_creep's training family)
QUERY = "875 + 200 * exp(-((x - 0.03) / 0.01)**2) * minimum(t / 5, 1)"
MEMORY_GB = 3.0


@dataclass
class Mutation:
    """One input to try: ``payload`` is the file's new content (str or bytes), or for a
    model a callable that edits the copied file in place."""

    source: str
    name: str
    payload: object
    expect: str            # "refuse", "accept" or "either"
    outcome: str = ""
    seconds: float = 0.0
    message: str = ""


# --------------------------------------------------------------------------- schema
def _schema_at(path: tuple) -> tuple[object, object]:
    """(type, dataclass field) of the case-file key ``path`` (None, None if unknown)."""
    from rom.config import Case
    tp, fld = Case, None
    for part in path:  # loop over the key's parts
        tp = _strip_optional(tp)
        if dataclasses.is_dataclass(tp):
            fields = {f.name: f for f in dataclasses.fields(tp)}
            if part not in fields:
                return None, None
            fld, tp = fields[part], typing.get_type_hints(tp)[part]
        elif typing.get_origin(tp) in (list, dict):
            fld, tp = None, typing.get_args(tp)[-1]
        else:
            return None, None
    return tp, fld


def _strip_optional(tp):
    args = typing.get_args(tp)
    if type(None) in args:
        (tp,) = [a for a in args if a is not type(None)]
    return tp


def _is_number_or_formula(tp) -> bool:
    from rom.fom.config import NUMBER_OR_FORMULA
    return typing.get_origin(tp) is typing.Literal and typing.get_args(tp)[0] is NUMBER_OR_FORMULA


def _expect_value(path: tuple, value) -> str:
    """Must the schema refuse ``value`` at ``path``? ("refuse" or "either")."""
    if "petsc_options" in path or path[:1] == ("extends",):
        return "either"                     # free-form option text
    tp, fld = _schema_at(path)
    if tp is None:
        return "either"
    tp = _strip_optional(tp)
    if isinstance(value, float) and value != value or value in (float("inf"), float("-inf")):
        return "refuse" if tp in (float, int) or _is_number_or_formula(tp) else "either"
    if tp is float or tp is int:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return "refuse"
        if tp is int and not isinstance(value, int):
            return "refuse"
        rng = fld.metadata.get("range") if fld is not None else None
        if rng:
            lo, hi, lo_open, hi_open = rng
            if (lo is not None and (value < lo or (lo_open and value == lo))) or \
                    (hi is not None and (value > hi or (hi_open and value == hi))):
                return "refuse"
        if path[-1] in ("uniform", "T_base", "T_ref") and value <= 0:
            return "refuse"
        return "either"
    if tp is bool:
        return "either" if isinstance(value, bool) else "refuse"
    if tp is str or typing.get_origin(tp) is typing.Literal and not _is_number_or_formula(tp):
        if not isinstance(value, str):
            return "refuse"
        return "refuse" if typing.get_origin(tp) is typing.Literal else "either"
    if _is_number_or_formula(tp):
        return "refuse" if isinstance(value, (bool, list, dict)) else "either"
    if tp is Path:
        return "either" if isinstance(value, str) and value else "refuse"
    if typing.get_origin(tp) is list:
        if not isinstance(value, list):
            return "refuse"
        inner = _strip_optional(typing.get_args(tp)[0])
        if inner in (float, int) and any(not isinstance(v, (int, float)) or isinstance(v, bool)
                                         or v != v for v in value):
            return "refuse"
        return "either"
    if typing.get_origin(tp) is dict or dataclasses.is_dataclass(tp):
        return "either" if isinstance(value, dict) else "refuse"
    return "either"


def _required(path: tuple) -> bool:
    _, fld = _schema_at(path)
    return fld is not None and fld.default is dataclasses.MISSING and \
        fld.default_factory is dataclasses.MISSING


# --------------------------------------------------------------------------- case mutations
def _leaves(data, path=()):
    """(path, value) of every scalar or list of scalars in a YAML document."""
    if isinstance(data, dict):
        for k, v in data.items():  # loop over keys
            yield from _leaves(v, path + (k,))
    elif isinstance(data, list) and any(isinstance(v, (dict, list)) for v in data):
        for i, v in enumerate(data):  # loop over items
            yield from _leaves(v, path + (i,))
    else:
        yield path, data


def _set(data, path, value):
    out = copy.deepcopy(data)
    node = out
    for p in path[:-1]:
        node = node[p]
    if value is _DELETE:
        del node[path[-1]]
    else:
        node[path[-1]] = value
    return out


_DELETE = object()


def _dump(data) -> str:
    return yaml.safe_dump(data, sort_keys=False, default_flow_style=None, width=100)


def _key(path) -> str:
    return ".".join(f"[{p}]" if isinstance(p, int) else str(p) for p in path).replace(".[", "[")


def case_mutations(file: Path, per_file: int, rng: random.Random) -> list[Mutation]:
    """The mutations of one case file (structural ones sampled to ``per_file``)."""
    text = file.read_text()
    data = yaml.safe_load(text)
    src = str(file.relative_to(ROOT))
    out = [Mutation(src, "control (unmutated)", text, "control")]

    def add(name, payload, expect):
        out.append(Mutation(src, name, payload, expect))

    # syntax
    lines = text.splitlines()
    first = next(i for i, ln in enumerate(lines) if ln and not ln.startswith("#"))
    add("syntax: unclosed flow list", text + "\nextra_key: [1, 2\n", "refuse")
    add("syntax: tab indentation", "\n".join(lines[:first] + ["\t" + lines[first]]
                                             + lines[first + 1:]), "refuse")
    add("syntax: unclosed quote", text + '\ndescription: "unfinished\n', "refuse")
    add("syntax: binary garbage", b"\x00\xff\xfe" + text.encode()[:200], "refuse")
    add("syntax: empty file", "", "refuse")
    add("syntax: top-level list", "- a\n- b\n", "refuse")
    add("syntax: python tag", text + "\nx: !!python/object/apply:os.system ['touch pwned']\n",
        "refuse")
    add("syntax: truncated mid-file", text[:len(text) // 2], "either")
    # aliases and duplicates
    own = dict(data)
    add("alias: benign (description = name)",
        _dump({**own, "name": own.get("name", "x")}).replace(
            f"name: {own.get('name', 'x')}\n", f"name: &nm {own.get('name', 'x')}\n", 1)
        + ("description: *nm\n" if "description" not in own else ""),
        "accept" if "description" not in own and "name" in own else "either")
    bomb = ['  - &a0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    bomb += [f"  - &a{i} [" + ", ".join([f"*a{i - 1}"] * 9) + "]" for i in range(1, 10)]
    no_desc = _dump({k: v for k, v in own.items() if k != "description"})
    add("alias: 9^10 bomb under description", no_desc + "description:\n" + "\n".join(bomb)
        + "\n", "refuse")
    add("alias: 9^6 bomb under description", no_desc + "description:\n" + "\n".join(bomb[:6])
        + "\n", "refuse")
    add("alias: recursive", no_desc + "description: &r [*r]\n", "refuse")
    add("duplicate: top-level key", text + f"\n{next(iter(own))}: duplicate\n", "refuse")
    for i, ln in enumerate(lines):  # the first flow mapping: a key given twice
        if ": {" in ln and ":" in ln.split(": {", 1)[1]:
            head, body = ln.split(": {", 1)
            k = body.split(":", 1)[0].strip()
            dup = f"{head}: {{{k}: {body.split(':', 1)[1].split(',')[0].split('}')[0].strip()}, " \
                  f"{body}"
            add(f"duplicate: {k!r} in a flow mapping (line {i + 1})",
                "\n".join(lines[:i] + [dup] + lines[i + 1:]), "refuse")
            break
    # values: types, NaN/inf, ranges, huge numbers
    structural = []
    for path, value in _leaves(data):  # loop over leaves
        if not path or path[0] == "extends":
            continue
        if isinstance(value, bool):
            candidates = ["abc", 1]
        elif isinstance(value, (int, float)):
            candidates = ["abc", [1], {"a": 1}, True, float("nan"), float("inf"),
                          float("-inf"), -1, 0, 1e308, 10**12]
            if isinstance(value, int):
                candidates.append(1.5)
        elif isinstance(value, str):
            candidates = [123, [value], ""]
        elif isinstance(value, list):
            candidates = [5, ["abc"], [float("nan")], []]
        else:
            continue
        for v in candidates:  # loop over replacement values
            structural.append((f"value: {_key(path)} = {v!r}", _set(data, path, v),
                               _expect_value(path, v)))
    # deleted keys (a file that extends another inherits what it deletes)
    extends = "extends" in data

    def deletions(node, path):
        if isinstance(node, dict):
            for k in node:  # loop over keys
                p = path + (k,)
                expect = "refuse" if _required(p) and not extends else "either"
                structural.append((f"delete: {_key(p)}", _set(data, p, _DELETE), expect))
                deletions(node[k], p)
        elif isinstance(node, list):
            for i, v in enumerate(node[:2]):  # loop over the first items
                deletions(v, path + (i,))

    deletions(data, ())
    # formula injections, negative temperatures, time grids
    formulas = [p for p, v in _leaves(data) if p and isinstance(v, str) and (
        p[-1] == "formula" or _is_number_or_formula(_strip_optional(_schema_at(p)[0])))]
    loadings = (data.get("fom") or {}).get("loadings") or []
    if not formulas and loadings:
        formulas = [("fom", "loadings", 0, "temperature", "formula")]
    for inj in INJECTIONS:  # loop over injections
        for p in formulas[:1] + formulas[-1:]:
            target = data
            if p[-1] == "formula" and p[:-1] == ("fom", "loadings", 0, "temperature"):
                target = _set(data, p[:-1], {"formula": "900"})
            structural.append((f"formula: {_key(p)} = {inj[:40]!r}", _set(target, p, inj),
                               "refuse"))
    if loadings:
        for temp in ({"uniform": -100}, {"uniform": 0.0}, {"formula": "900", "T_base": -5,
                     "amplitude": {"times": [0, 1], "values": [0, 1]}}):
            structural.append((f"temperature: fom.loadings[0].temperature = {temp}",
                               _set(data, ("fom", "loadings", 0, "temperature"), temp),
                               "refuse"))
    if data.get("material"):
        structural.append(("temperature: material.T_ref = -1",
                           _set(data, ("material", "T_ref"), -1), "refuse"))
        structural.append(("temperature: material.E.temperatures = [-10, 1200]",
                           _set(data, ("material", "E"), {"temperatures": [-10, 1200],
                                                          "values": [2e11, 1.4e11]}), "refuse"))
    for queries in ((data.get("study") or {}).get("queries") or [])[:1]:
        structural.append(("temperature: study.queries[0].temperature = {'uniform': -100}",
                           _set(data, ("study", "queries", 0, "temperature"),
                                {"uniform": -100}), "refuse"))
    if (data.get("loading") or {}).get("times"):
        tg = data["loading"]["times"]
        for start, stop in ((5, 5), (5, 1)):
            structural.append((f"times: loading.times = start {start}, stop {stop}",
                               _set(data, ("loading", "times"), {**tg, "start": start,
                                                                 "stop": stop}), "refuse"))
        structural.append(("times: loading.times.steps = 0",
                           _set(data, ("loading", "times"), {**tg, "steps": 0}), "refuse"))
    must = [s for s in structural if s[0].split(":")[0] in ("formula", "temperature", "times")]
    rest = [s for s in structural if s not in must]
    rng.shuffle(rest)
    for name, mutated, expect in must + rest[:max(0, per_file - len(must))]:
        add(name, _dump(mutated), expect)
    return out


# --------------------------------------------------------------------------- model mutations
def model_mutations(model: Path) -> list[Mutation]:
    """The mutations of a reduced-model file (each a function editing a copy in place)."""
    import h5py
    import numpy as np
    src = model.name
    datasets = []
    with h5py.File(model, "r") as f:
        f.visititems(lambda name, obj: datasets.append(name)
                     if isinstance(obj, h5py.Dataset) else None)
        meta_where = [(k, "") for k in f.attrs if k == "meta"]
        if not meta_where:
            meta_where = [(k, g) for g in ("reduced", "full") if g in f for k in f[g].attrs
                          if k == "meta"]
    size = model.stat().st_size
    out = [Mutation(src, "control (unmutated)", lambda p: None, "control")]

    def add(name, edit):
        out.append(Mutation(src, name, edit, "refuse"))

    for frac in (0.1, 0.5, 0.9, 0.999):
        add(f"truncate to {frac:.1%}", lambda p, n=int(size * frac): os.truncate(p, n))
    add("not HDF5: text", lambda p: Path(p).write_text("not a model\n"))
    add("not HDF5: empty", lambda p: Path(p).write_bytes(b""))
    add("not HDF5: random bytes", lambda p: Path(p).write_bytes(os.urandom(4096)))
    for name in datasets:  # loop over datasets
        if name.startswith(("full/", "reduced/")):
            add(f"delete {name}", lambda p, n=name: _h5(p, lambda f: f.__delitem__(n)))

    def set_meta(text):
        def edit(p):
            def go(f):
                key, group = meta_where[0] if meta_where else ("meta", "")
                (f[group] if group else f).attrs[key] = text
            _h5(p, go)
        return edit

    if meta_where:
        add("meta: broken JSON", set_meta('{"n_modes": 3,'))
        add("meta: a JSON list", set_meta("[1, 2, 3]"))
        add("meta: empty", set_meta(""))

    def replace(name, fn):
        def edit(p):
            def go(f):
                data = fn(f[name][()])
                del f[name]
                f[name] = data
            _h5(p, go)
        return edit

    if "reduced/weights" in datasets:
        add("reduced/weights cut to 40 entries", replace("reduced/weights", lambda a: a[:40]))
        add("inf in reduced/weights", replace("reduced/weights", lambda a: _poke(a, np.inf)))
        add("negative reduced/weights", replace("reduced/weights", lambda a: -a))
    for name in ("reduced/eps", "full/phi", "reduced/f_red"):
        if name in datasets:
            add(f"NaN in {name}", replace(name, lambda a: _poke(a, np.nan)))
    return out


def _poke(a, value):
    a = a.astype(float).copy()
    a.flat[a.size // 2] = value
    return a


def _h5(path, fn):
    import h5py
    with h5py.File(path, "r+") as f:
        fn(f)


def build_model(dest: Path) -> Path:
    """The CI-size plate_creep reduced model (full-order run + offline), built in ``dest``."""
    sys.path.insert(0, str(ROOT / "tests"))
    from test_online_common import copy_case, run_fom

    from rom.config import load_case
    from rom.online import build_reduced_model
    case_file = copy_case(dest)
    run_fom(case_file)
    return Path(build_reduced_model(load_case(case_file)))


# --------------------------------------------------------------------------- running
def _limit_memory():
    limit = int(MEMORY_GB * 2**30)
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))


class Worker:
    """A child interpreter (rom imported once, address space limited) that checks one
    input per request; a request without an answer within the timeout is a hang: the
    child is killed (by its pid) and a fresh one started for the next request."""

    def __init__(self):
        self.proc = None

    def _start(self):
        env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1",
               "OPENBLAS_NUM_THREADS": "1"}
        self.proc = subprocess.Popen([sys.executable, __file__, "--worker"], env=env,
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.DEVNULL, text=True,
                                     preexec_fn=_limit_memory, cwd=tempfile.gettempdir())

    def run(self, kind: str, path: Path, timeout: float) -> tuple[str, str, float]:
        """(raw outcome 'accepted' / 'clear' / 'crash' / 'hang', message, seconds)."""
        if self.proc is None or self.proc.poll() is not None:
            self._start()
            self._ask({"kind": "ping"}, 120.0)
        t0 = time.perf_counter()
        reply = self._ask({"kind": kind, "path": str(path)}, timeout)
        seconds = time.perf_counter() - t0
        if reply is None:
            self.close()
            return "hang", f"no answer within {timeout:g} s (killed)", seconds
        return reply["status"], reply["message"], seconds

    def _ask(self, request: dict, timeout: float) -> dict | None:
        import select
        self.proc.stdin.write(json.dumps(request) + "\n")
        self.proc.stdin.flush()
        ready, _, _ = select.select([self.proc.stdout], [], [], timeout)
        line = self.proc.stdout.readline() if ready else ""
        if not line:                     # timeout, or the child died (e.g. a signal)
            return None
        return json.loads(line)

    def close(self):
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait()
            self.proc = None


def classify(m: Mutation, raw: str) -> str:
    if m.expect == "control":            # a bundled file as it is: run, or skipped
        return "ok" if raw == "accepted" else "skipped" if raw == "clear" else raw
    if raw == "accepted":
        return "garbage" if m.expect == "refuse" else "ok"
    if raw == "clear" and m.expect == "accept":
        return "refused-valid"
    return raw


def check(kind: str, path: str) -> str:
    """Check one input like the command-line stages do (raises on a refusal)."""
    if kind == "case":
        from rom.config import load_case
        case = load_case(path)
        if case.fom is not None:
            from rom.fom.run import load_fom_case
            load_fom_case(path)
        if case.study is not None:
            from rom.study.run import expand_queries
            expand_queries(case.study)
        return "accepted"
    import numpy as np

    import rom
    model = rom.load(path)
    r = model.solve(QUERY, np.linspace(0.0, 5.0, 3))
    # the fields on the mesh too: a query reads no full-size array, a field reads its rows
    u, p, s = r.displacement(2), r.p(2), r.stress(2)
    return (f"accepted: indicator {np.round(np.asarray(r.indicator), 6).tolist()}, "
            f"|u| {np.linalg.norm(u):.3g}, |p| {np.linalg.norm(p):.3g}, "
            f"|stress| {np.linalg.norm(s):.3g}")


def worker() -> int:
    """The child of :class:`Worker`: one JSON request per line on stdin, one answer each."""
    import traceback

    import rom  # noqa: F401 - imported once
    from rom.parallel import UserError
    for line in sys.stdin:  # loop over requests
        req = json.loads(line)
        if req["kind"] == "ping":
            reply = {"status": "ok", "message": ""}
        else:
            try:
                reply = {"status": "accepted", "message": check(req["kind"], req["path"])}
            except (UserError, FileNotFoundError) as exc:
                msg = str(exc)
                reply = {"status": "clear" if "\n" not in msg.strip() else "crash",
                         "message": msg}
            except Exception as exc:  # noqa: BLE001 - a crash: say what
                tb = traceback.extract_tb(exc.__traceback__)[-1]
                reply = {"status": "crash", "message": f"{type(exc).__name__}: {exc} "
                                                       f"({Path(tb.filename).name}:{tb.lineno})"}
        print(json.dumps(reply), flush=True)
    return 0


def run_cases(args, rng, pool: Worker) -> list[Mutation]:
    files = sorted((ROOT / "cases").glob(args.files))
    done = []
    for file in files:  # loop over the bundled case files
        muts = case_mutations(file, args.per_file, rng)
        with tempfile.TemporaryDirectory(prefix="fuzz-case-") as tmp:
            tmp = Path(tmp)
            for other in file.parent.iterdir():  # the case directory, linked
                (tmp / other.name).symlink_to(other)
            target = tmp / f".fuzz-{file.name}"
            for k, m in enumerate(muts):  # loop over the file's mutations
                if isinstance(m.payload, bytes):
                    target.write_bytes(m.payload)
                else:
                    target.write_text(m.payload)
                raw, m.message, m.seconds = pool.run("case", target, args.timeout)
                m.outcome = classify(m, raw)
                _print_row(m)
                done.append(m)
                if k == 0 and m.outcome != "ok":
                    print(f"    (control refused: skipping the mutations of {m.source})")
                    break
            if any((d / "pwned").exists() for d in (tmp, file.parent,
                                                     Path(tempfile.gettempdir()))):
                print("!!! a mutation created the file 'pwned' (code execution)")
    return done


def run_models(args, pool: Worker) -> list[Mutation]:
    with tempfile.TemporaryDirectory(prefix="fuzz-model-") as tmp:
        tmp = Path(tmp)
        model = Path(args.model) if args.model else build_model(tmp / "build")
        done = []
        for m in model_mutations(model):  # loop over mutations
            target = tmp / "model.rom.h5"
            shutil.copy(model, target)
            m.payload(target)
            raw, m.message, m.seconds = pool.run("model", target, args.timeout)
            m.outcome = classify(m, raw)
            _print_row(m)
            done.append(m)
        return done


def _print_row(m: Mutation) -> None:
    msg = " ".join(m.message.split())
    msg = msg if len(msg) <= 110 else msg[:107] + "..."
    print(f"{m.outcome:<13s} {m.seconds:5.1f}s  {m.source:<28s} {m.name[:70]:<70s}  {msg}",
          flush=True)


def summary(done: list[Mutation], label: str) -> str:
    counts = {k: sum(m.outcome == k for m in done) for k in
              ("clear", "ok", "crash", "hang", "garbage", "refused-valid", "skipped")}
    n = sum(m.expect != "control" for m in done)
    return (f"{label}: {n} mutations (+ {len(done) - n} unmutated controls): "
            f"{counts['clear']} clear errors, "
            f"{counts['ok']} accepted as valid, {counts['crash']} crashes, {counts['hang']} "
            f"hangs, {counts['garbage']} silent garbage, {counts['refused-valid']} valid inputs "
            f"refused; {counts['skipped']} file(s) skipped (the unmutated file is refused "
            "here, e.g. a mesh make_mesh.py writes first)")


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--worker"]:
        return worker()
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("what", choices=["cases", "models", "all"])
    parser.add_argument("--per-file", type=int, default=45,
                        help="value/deletion mutations sampled per case file (plus the fixed "
                             "syntax, alias, duplicate, formula, temperature and time ones)")
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds per mutation")
    parser.add_argument("--model", help="reduced-model file (default: build plate_creep's)")
    parser.add_argument("--files", default="*/*.yaml",
                        help="case files under cases/ (a glob), e.g. 'plate_creep/*.yaml'")
    parser.add_argument("--seed", type=int, default=29)
    parser.add_argument("--json", help="write every mutation's outcome here")
    args = parser.parse_args(argv)
    rng = random.Random(args.seed)
    results = {}
    pool = Worker()
    try:
        if args.what in ("cases", "all"):
            results["case files"] = run_cases(args, rng, pool)
        if args.what in ("models", "all"):
            results["model files"] = run_models(args, pool)
    finally:
        pool.close()
    print()
    for label, done in results.items():  # loop over modes
        print(summary(done, label))
        for m in done:
            if m.outcome in ("crash", "hang", "garbage", "refused-valid", "skipped"):
                print(f"  {m.outcome}: {m.source}: {m.name}: {m.message[:150]}")
    if args.json:
        Path(args.json).write_text(json.dumps(
            {label: [{k: getattr(m, k) for k in ("source", "name", "expect", "outcome",
                                                  "seconds", "message")} for m in done]
             for label, done in results.items()}, indent=1))
    bad = sum(m.outcome in ("crash", "hang", "garbage", "refused-valid")
              for done in results.values() for m in done)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())

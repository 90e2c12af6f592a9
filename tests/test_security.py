"""Hostile or careless inputs (issue 29): no code execution from a formula, no hang, no
memory blow-up, nothing written before the inputs are checked, clear errors everywhere.

Time- and memory-bound cases run in a subprocess with a timeout and an address-space
limit, so that a regression fails the test instead of hanging or swapping the machine.
"""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import meshio
import numpy as np
import pytest

from rom.config import CaseError, _show, load_case
from rom.fom.setup import Formula
from rom.formula import Expression
from rom.parallel import UserError, check_same

ROOT = Path(__file__).resolve().parents[1]

#: the string that ran os.system through ReducedModel.solve(temperature=...) (issue 29)
EXPLOIT = ("[c for c in ().__class__.__bases__[0].__subclasses__() if c.__name__=="
           "'catch_warnings'][0]()._module.__builtins__['__import__']('os')"
           ".system('touch pwned')+900")
#: a formula that never returned (Python integer power of a power)
NEVER_RETURNS = "800 + 0*x + 0*9**9**10"


def _bounded(code: str, cwd: Path, timeout: float = 60.0, memory_gb: float = 2.0):
    """Run ``code`` in a fresh interpreter (limited address space, timeout); returns
    (return code, stdout, stderr). A timeout fails the calling test."""
    limit = int(memory_gb * 2**30)
    pre = f"import resource; resource.setrlimit(resource.RLIMIT_AS, ({limit}, {limit}))\n"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1",
           "OPENBLAS_NUM_THREADS": "1"}
    try:
        p = subprocess.run([sys.executable, "-c", pre + textwrap.dedent(code)], cwd=cwd,
                           env=env, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        pytest.fail(f"did not finish within {timeout:g} s")
    return p.returncode, p.stdout, p.stderr


def _fom_case(path: Path, loading: str = "{name: a, temperature: {uniform: 400}}",
              times: str = "{start: 0, stop: 2, steps: 2}") -> Path:
    from rom.meshes import solid_block
    meshio.write(path / "bar.inp", solid_block((2, 1, 1), cell="hexahedron",
                                               lengths=(0.02, 0.01, 0.01)))
    (path / "case.yaml").write_text(textwrap.dedent(f"""\
        name: bar
        mesh: bar.inp
        snapshots: {{store: out/bar.snapshots.h5}}
        output: {{directory: out, plot: false, write_modes: false}}
        material:
          E: {{values: [2.0e11]}}
          nu: {{values: [0.3]}}
        loading:
          dirichlet: [{{group: xmin}}]
          pressure: [{{group: xmax, value: -1.0e7}}]
          times: {times}
        fom:
          write_xdmf: false
          loadings:
            - {loading}
        """))
    return path / "case.yaml"


def _load_fom(case: Path):
    from rom.fom.run import load_fom_case
    return load_fom_case(case)


# --------------------------------------------------------------------------- 1: formulas
def test_exploit_formula_is_refused_and_runs_nothing(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(UserError, match=r"temperature: formula .*not allowed"):
        Expression(EXPLOIT, ("x", "y", "z", "t"), "temperature")
    with pytest.raises(UserError, match=r"fom.loadings\[0\].temperature.formula: formula"):
        Formula(EXPLOIT, ("x", "y", "z", "t"), "fom.loadings[0].temperature.formula")
    assert not (tmp_path / "pwned").exists()


@pytest.mark.parametrize("text, what", [
    ("x.__class__", "attribute access is not allowed"),
    ("x.sum()", "calling anything but the functions"),
    ("sin.__globals__", "attribute access is not allowed"),
    ("x[0]", "subscripts are not allowed"),
    ("().__class__.__bases__[0]", "subscripts are not allowed"),
    ("().__class__.__bases__", "attribute access is not allowed"),
    ("x + {'__class__': 1}['__class__']", "subscripts are not allowed"),
    ("[v for v in x]", "comprehensions are not allowed"),
    ("sum(v for v in x)", "calling anything but the functions"),
    ("(lambda: 900)()", "calling anything but the functions"),
    ("x + (lambda v: v)", "lambdas are not allowed"),
    ("clip(x, a_min=300)", "keyword arguments are not allowed"),
    ("hypot(*x)", "starred arguments are not allowed"),
    ("900 + len('abc')", "calling anything but the functions"),
    ("900 * ('a' < 'b')", "strings are not allowed"),
    ("__import__", "the name '__import__' is not allowed"),
    ("900 + (x := 1)", r"assignments \(:=\) are not allowed"),
    ("x @ x", "the MatMult operator is not allowed"),
    ("2 << 900", "the LShift operator is not allowed"),
    ("x in x", r"identity and membership tests \(is, in\) are not allowed"),
    ("900 + exp", "the function 'exp' used as a value is not allowed"),
])
def test_constructs_outside_the_formula_language_are_refused(text, what):
    for make in (Expression, Formula):  # loop over the online and case-file entry points
        with pytest.raises(UserError, match=r"^key: formula .*: " + what):
            make(text, ("x", "y", "z", "t"), "key")


def test_formula_language_still_evaluates_numpy_expressions():
    x = np.array([0.0, 0.01, 0.02])
    f = Formula("T0 + A * exp(-((x - 0.01) / 0.01)**2) * minimum(t / 5, 1) + 0 * pi "
                "+ where(x > 0.015, 1, 0) + (2 if t > 1 else 3) + 7 // 2 % 3",
                ("x", "t", "T0", "A"), "key")
    got = f(3, x=x, t=10.0, T0=800.0, A=100.0)
    want = 800 + 100 * np.exp(-((x - 0.01) / 0.01) ** 2) + (x > 0.015) + 2 + 0
    np.testing.assert_allclose(got, want, rtol=1e-15)
    assert f.used >= {"x", "t", "T0", "A", "exp", "minimum", "pi", "where"}


def test_case_file_formula_with_attribute_access_names_the_key(tmp_path):
    case = _fom_case(tmp_path, loading='{name: a, temperature: {formula: "x.__class__"}}')
    with pytest.raises(CaseError, match=r"fom.loadings\[0\].temperature.formula: formula "
                                         r"'x.__class__': attribute access is not allowed"):
        _load_fom(case)


def test_study_query_formulas_are_checked_when_the_case_is_read(tmp_path):
    case = _fom_case(tmp_path)
    case.write_text(case.read_text() + "online: {}\nstudy:\n  sample:\n    - n: 2\n"
                    "      temperature: {formula: \"x.__class__\", parameters: {T0: 900}}\n")
    with pytest.raises(CaseError, match=r"case.yaml: study.sample\[0\].temperature.formula: "
                                        r"formula 'x.__class__': attribute access is not"):
        load_case(case)


def test_study_sample_ranges_must_be_low_high(tmp_path):
    """Found by tools/fuzz_inputs.py: an empty range was a ValueError in rom.study."""
    case = _fom_case(tmp_path)
    case.write_text(case.read_text() + "online: {}\nstudy:\n  sample:\n    - n: 2\n"
                    "      temperature: {formula: \"T0 + 0 * x\", parameters: {T0: 900}}\n"
                    "      parameters: {T0: []}\n")
    with pytest.raises(CaseError, match=r"case.yaml: study.sample\[0\].parameters.T0: expected "
                                        r"a range \[low, high\] with low <= high, got \[\]"):
        load_case(case)


# --------------------------------------------------------------------------- 3: no hang
def test_formula_that_never_returned_is_refused_within_a_second(tmp_path):
    rc, out, err = _bounded(f"""
        import time
        from rom.fom.setup import Formula
        from rom.parallel import UserError
        for where in ("check", "evaluate"):
            t0 = time.perf_counter()
            try:
                f = Formula({NEVER_RETURNS!r}, ("x", "t"), "temperature.formula")
                f(3, x=1.0, t=0.0)
                print("accepted")
            except UserError as exc:
                print(f"{{time.perf_counter() - t0:.3f}} {{exc}}")
        """, tmp_path, timeout=60)
    assert rc == 0, err
    seconds, message = out.splitlines()[0].split(" ", 1)
    assert float(seconds) < 1.0
    assert message.startswith("temperature.formula: formula '800 + 0*x + 0*9**9**10': "
                              "its constant part '0*9**9**10' fails: OverflowError")


def test_overflowing_formula_values_are_a_clear_error():
    f = Formula("x ** 1e10 + 300", ("x",), "key")       # variables: evaluated per array
    with pytest.raises(UserError, match="key: formula 'x \\*\\* 1e10 \\+ 300' gives "
                                        "non-finite values"):
        f(2, x=np.array([1.0, 10.0]))
    for text in ("exp(1000) * x", "1 / 0 + x", "10.0 ** 400 + x"):
        with pytest.raises(UserError, match="its constant part"):
            Formula(text, ("x",), "key")
    with pytest.raises(UserError, match="nested too deeply|at most"):
        Formula("-" * 1900 + "x", ("x",), "key")


# --------------------------------------------------------------------------- 2: YAML bomb
def _bomb(levels: int = 10, width: int = 9) -> str:
    """A ~3 kB YAML list whose last item stands for width**levels strings."""
    lines = ['  - &a0 ["lol"' + ', "lol"' * (width - 1) + "]"]
    lines += [f"  - &a{i} [" + ", ".join([f"*a{i - 1}"] * width) + "]"
              for i in range(1, levels)]
    return "\n".join(lines) + "\n"


def test_yaml_alias_bomb_is_refused_quickly_with_bounded_memory(tmp_path):
    (tmp_path / "case.yaml").write_text("name: bomb\ninterp: {}\ndescription:\n" + _bomb())
    assert (tmp_path / "case.yaml").stat().st_size < 4000
    rc, out, err = _bounded("""
        import time
        from rom.config import CaseError, load_case
        t0 = time.perf_counter()
        try:
            load_case("case.yaml")
            print("accepted")
        except CaseError as exc:
            print(f"{time.perf_counter() - t0:.3f} {exc}")
        """, tmp_path, timeout=60, memory_gb=1.5)
    assert rc == 0, err
    seconds, message = out.splitlines()[0].split(" ", 1)
    assert float(seconds) < 2.0
    assert message == ("case.yaml: the document expands to more than 200,000 values "
                       "(aliases of aliases?); a case file is not that large")


def test_show_never_forms_the_repr_of_a_huge_value(tmp_path):
    rc, out, err = _bounded("""
        import time
        from rom.config import _show
        a = [0] * 1000
        b = [a] * 1000
        c = [b] * 1000            # 10^9 entries, 16 kB of lists
        t0 = time.perf_counter()
        s = _show(c)
        print(f"{time.perf_counter() - t0:.3f} {len(s)}")
        """, tmp_path, timeout=60, memory_gb=1.5)
    assert rc == 0, err
    seconds, length = out.split()
    assert float(seconds) < 1.0 and int(length) <= 70


def test_small_aliases_and_merge_keys_still_work(tmp_path):
    p = tmp_path / "case.yaml"
    p.write_text("name: ok\ninterp: {}\ndescription: &d shared text\n"
                 "output: {directory: *d}\n")
    case = load_case(p)
    assert case.description == "shared text" and case.output.directory.name == "shared text"
    from rom.config import parse_yaml
    data = parse_yaml("a: &a {x: 1, y: 2}\nb: {<<: *a, y: 3}\n", "m.yaml")
    assert data["b"] == {"x": 1, "y": 3}


def test_recursive_alias_is_a_clear_error(tmp_path):
    p = tmp_path / "case.yaml"
    p.write_text("name: loop\ninterp: {}\ndescription: &d [*d]\n")
    with pytest.raises(CaseError, match="case.yaml: not valid YAML: a recursive alias"):
        load_case(p)


def test_a_file_that_is_not_text_is_a_one_line_yaml_error(tmp_path):
    p = tmp_path / "case.yaml"
    p.write_bytes(b"\x00\xff\xfename: x\n")
    with pytest.raises(CaseError) as err:
        load_case(p)
    assert str(err.value).startswith(f"{p}: not valid YAML: unacceptable character")
    assert "\n" not in str(err.value)


def test_show_of_small_values_is_unchanged():
    assert _show(3.5) == "3.5 (float)"
    assert _show("abc") == "'abc' (str)"
    assert _show([1, 2]) == "[1, 2] (list)"


# --------------------------------------------------------------------------- 11: duplicates
@pytest.mark.parametrize("text, key, line, first", [
    ("name: a\ninterp: {}\npod: {rtol: 1.0e-3}\nname: b\n", "'name'", 4, 1),
    ("name: a\ninterp: {}\npod: {rtol: 1.0e-3, rtol: 1.0e-2}\n", "'rtol'", 3, 3),
    ("name: a\ninterp: {}\noutput:\n  plot: false\n  directory: o\n  plot: true\n",
     "'plot'", 6, 4),
])
def test_duplicate_keys_are_refused_naming_key_line_and_file(tmp_path, text, key, line, first):
    p = tmp_path / "case.yaml"
    p.write_text(text)
    with pytest.raises(CaseError) as err:
        load_case(p)
    assert str(err.value) == (f"{p}: line {line}: duplicate key {key} (str) (first at line "
                              f"{first}); give each key once")


# --------------------------------------------------------------------------- 5, 9: case ranges
@pytest.mark.parametrize("times", ["{start: 0, stop: 0, steps: 2}",
                                   "{start: 5, stop: 1, steps: 2}"])
def test_time_grid_must_increase(tmp_path, times):
    case = _fom_case(tmp_path, times=times)
    with pytest.raises(CaseError, match=r"case.yaml: loading.times.stop: must be greater than "
                                        r"start = \d s \(the times increase\), got \d s"):
        load_case(case)


def test_rom_fom_overwrite_with_a_bad_time_grid_leaves_the_store_untouched(tmp_path):
    pytest.importorskip("petsc4py")
    case = _fom_case(tmp_path, times="{start: 5, stop: 1, steps: 2}")
    store = tmp_path / "out" / "bar.snapshots.h5"
    store.parent.mkdir()
    store.write_bytes(b"the good store of an earlier run")
    before = store.stat().st_mtime_ns
    p = subprocess.run([sys.executable, "-m", "rom.fom", str(case), "--overwrite", "--quiet"],
                       cwd=tmp_path, capture_output=True, text=True, timeout=300,
                       env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert p.returncode == 2, p.stderr
    assert p.stderr.strip().splitlines() == [
        f"rom.fom: error: {case}: loading.times.stop: must be greater than start = 5 s (the "
        "times increase), got 1 s"]
    assert store.read_bytes() == b"the good store of an earlier run"
    assert store.stat().st_mtime_ns == before
    assert sorted(q.name for q in store.parent.iterdir()) == ["bar.snapshots.h5"]


@pytest.mark.parametrize("temperature, key, value", [
    ("{uniform: -100}", "uniform", "-100"),
    ("{uniform: 0}", "uniform", "0"),
    ("{uniform: 300, T_base: -5, amplitude: {times: [0, 2], values: [0, 1]}}", "T_base", "-5"),
])
def test_rom_fom_refuses_temperatures_at_or_below_zero_kelvin(tmp_path, temperature, key,
                                                              value):
    case = _fom_case(tmp_path, loading=f"{{name: a, temperature: {temperature}}}")
    with pytest.raises(CaseError, match=rf"fom.loadings\[0\].temperature.{key}: expected a "
                                        rf"temperature > 0 K, got {value} K"):
        _load_fom(case)


@pytest.mark.parametrize("old, new, message", [
    ("  nu: {values: [0.3]}\n", "  nu: {values: [0.3]}\n  T_ref: -1\n",
     r"material.T_ref: expected a value in \(0, inf\], got -1"),
    ("  E: {values: [2.0e11]}\n", "  E: {temperatures: [-10, 1200], values: [2e11, 1e11]}\n",
     r"material.E.temperatures: expected temperatures > 0 K, got -10 K"),
])
def test_material_temperatures_at_or_below_zero_kelvin_are_refused(tmp_path, old, new,
                                                                   message):
    case = _fom_case(tmp_path)
    case.write_text(case.read_text().replace(old, new))
    with pytest.raises(CaseError, match=f"case.yaml: {message}"):
        load_case(case)


def test_heat_boundary_numbers_at_or_below_zero_kelvin_are_refused():
    from rom.fom.config import FixedTemperatureSpec, HeatConfig
    from rom.fom.setup import heat_boundary
    heat = HeatConfig(fixed=[FixedTemperatureSpec("g", -5.0)])
    with pytest.raises(UserError, match=r"^fom.heat.fixed\[0\].value: expected a temperature "
                                        r"> 0 K, got -5 K"):
        heat_boundary(heat, {})


def test_rom_fom_refuses_a_formula_below_zero_kelvin_and_keeps_the_store(tmp_path):
    pytest.importorskip("petsc4py")
    from mpi4py import MPI

    from rom.fom.run import run_case
    case = _fom_case(tmp_path, loading='{name: a, temperature: {formula: "300 - 1e5 * x"}}')
    store = tmp_path / "out" / "bar.snapshots.h5"
    store.parent.mkdir()
    store.write_bytes(b"the good store of an earlier run")
    with pytest.raises(UserError, match=r"case.yaml: fom.loadings\[0\].temperature: "
                                        r"temperature <= 0 K \(-700 K at node 1, 8 node\(s\)\)"):
        run_case(_load_fom(case), MPI.COMM_SELF, overwrite=True, progress=False)
    assert store.read_bytes() == b"the good store of an earlier run"
    assert sorted(q.name for q in store.parent.iterdir()) == ["bar.snapshots.h5"]


@pytest.mark.parametrize("spec, at", [
    ({"formula": "300 - 1e5 * x"}, ""),                                       # steady source
    ({"formula": "300 - 100 * t"}, " at t = 4 s"),                            # in time
    ({"uniform": 300.0, "T_base": 1000.0,                                     # by amplitude
      "amplitude": {"times": [0, 2], "values": [0, 2]}}, ""),
])
def test_temperature_histories_below_zero_kelvin_are_refused(spec, at):
    from rom.fom.mesh import FEMesh
    from rom.fom.setup import temperature_history
    from rom.meshes import solid_block
    mesh = FEMesh.from_meshio(solid_block((2, 1, 1), cell="hexahedron",
                                          lengths=(0.02, 0.01, 0.01)))
    with pytest.raises(UserError, match=r"^temperature: temperature <= 0 K" + at):
        temperature_history(spec, mesh, positive=True)(4.0)
    temperature_history(spec, mesh)(4.0)          # superposition (unit fields) allowed


# --------------------------------------------------------------------------- 9: online inputs
@pytest.fixture(scope="module")
def model_path(tmp_path_factory) -> Path:
    """The CI-size plate_creep reduced model (serial), built once."""
    pytest.importorskip("petsc4py")
    from test_online_common import copy_case, run_fom

    from rom.online import OnlineConfig, build_reduced_model
    case_file = copy_case(tmp_path_factory.mktemp("plate_creep"))
    run_fom(case_file)
    return Path(build_reduced_model(load_case(case_file), None,
                                    OnlineConfig(indicator_tol=5e-4)))


@pytest.fixture(scope="module")
def model(model_path):
    from rom.online import load
    return load(model_path)


TIMES = np.linspace(0.0, 5.0, 3)
GOOD = "875 + 200 * exp(-((x - 0.03) / 0.01)**2) * minimum(t / 5, 1)"


def test_solve_with_the_exploit_string_runs_nothing(model, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(UserError, match="temperature: formula .* not allowed"):
        model.copy().solve(EXPLOIT, TIMES)
    assert not (tmp_path / "pwned").exists()


def test_solve_with_a_formula_that_never_returned_is_refused_at_once(model_path, tmp_path):
    rc, out, err = _bounded(f"""
        import time
        import numpy as np
        import rom
        from rom.parallel import UserError
        model = rom.load({str(model_path)!r})
        t0 = time.perf_counter()
        try:
            model.solve({NEVER_RETURNS!r}, np.linspace(0.0, 5.0, 3))
            print("accepted")
        except UserError as exc:
            print(f"{{time.perf_counter() - t0:.3f}} {{exc}}")
        """, tmp_path, timeout=120, memory_gb=3.0)
    assert rc == 0, err
    seconds, message = out.splitlines()[-1].split(" ", 1)
    assert float(seconds) < 1.0
    assert message.startswith("temperature: formula '800 + 0*x + 0*9**9**10': its constant "
                              "part '0*9**9**10' fails: OverflowError")


@pytest.mark.parametrize("tol", [float("nan"), float("inf"), -1.0, 0.0, "1e-3", True])
def test_solve_refuses_a_tolerance_that_is_not_finite_and_positive(model, tol):
    with pytest.raises(UserError, match=r"^tol: the indicator tolerance must be a finite "
                                        r"number > 0, got"):
        model.copy().solve(GOOD, TIMES, enrich=True, tol=tol)


@pytest.mark.parametrize("times, what", [
    ([0.0, float("nan"), 5.0], "times must be finite, got nan at index 1"),
    ([0.0, 1.0, float("inf")], "times must be finite, got inf at index 2"),
    ([0.0, 5.0, 2.5], "times must be a 1-D increasing array"),
])
def test_solve_refuses_bad_times(model, times, what):
    with pytest.raises(UserError, match="^" + what):
        model.copy().solve(GOOD, times)


@pytest.mark.parametrize("value, shown", [(np.nan, "nan"), (-5.0, "-5.0"), (0.0, "0.0"),
                                          (np.inf, "inf")])
def test_solve_refuses_temperature_arrays_not_finite_and_positive(model, value, shown):
    T = np.full((TIMES.size, model.meta["n_nodes"]), 900.0)
    T[1, 7] = value
    with pytest.raises(UserError, match=rf"^temperature array must be finite and > 0 K, got "
                                        rf"{shown} at time index 1, node 7 \(1 such entries\)"):
        model.copy().solve(T, TIMES)


@pytest.mark.parametrize("temperature", ["900 - 1000 * t",
                                         lambda x, y, z, t: 0 * x + 900 - 400 * t])
def test_solve_refuses_temperatures_at_or_below_zero_kelvin(model, temperature):
    with pytest.raises(UserError, match=r"^temperature gives values <= 0 K \(down to -?\d+ K\) "
                                        r"at t = 2.5 s"):
        model.copy().solve(temperature, TIMES)


def test_solve_still_answers_a_good_query(model):
    r = model.copy().solve(GOOD, TIMES, enrich=True, tol=5e-4)
    assert len(r.indicator) == TIMES.size and np.all(np.isfinite(r.indicator))


# --------------------------------------------------------------------------- 12: collectives
def test_check_same_serial_is_a_no_op():
    from mpi4py import MPI
    check_same(MPI.COMM_SELF, "pod", rtol=1e-4, method="tsqr")
    check_same(None, "pod", rtol=float("nan"))


@pytest.mark.mpi
@pytest.mark.parametrize("argument", ["rtol", "method"])
def test_pod_with_arguments_that_differ_between_ranks_is_a_clear_error(comm, argument):
    from rom import pod
    if comm.size == 1:
        pytest.skip("needs at least 2 ranks")
    X = np.random.default_rng(comm.rank).standard_normal((20, 6))
    kwargs = {"rtol": 1e-4 if comm.rank == 0 else 1e-3} if argument == "rtol" else \
        {"method": "snapshots" if comm.rank == 0 else "tsqr"}
    with pytest.raises(UserError) as err:
        pod(X, comm=comm, **kwargs)
    values = comm.allgather(repr(kwargs[argument]))
    assert str(err.value) == (
        f"pod: argument {argument!r} differs between ranks ("
        + ", ".join(f"rank {r}: {v}" for r, v in enumerate(values))
        + "); a collective call needs the same value on every rank")
    assert err.value.collective
    # the communicator is still usable: the same call with agreeing arguments works
    res = pod(X, comm=comm, rtol=1e-4)
    assert res.n_modes >= 1

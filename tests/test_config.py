"""Case files: valid cases load; every mistake is one CaseError naming the file and the key."""
from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from rom.config import (Case, CaseError, case_from_dict, load_case, read_case_mapping,
                        schema_reference)

ROOT = Path(__file__).resolve().parents[1]


def write(tmp_path: Path, text: str) -> Path:
    (tmp_path / "mesh.vtu").write_text("placeholder")
    p = tmp_path / "case.yaml"
    p.write_text(text)
    return p


MINIMAL = """
name: t
mesh: mesh.vtu
snapshots: {store: s.h5}
"""


def test_bundled_case_loads():
    case = load_case(ROOT / "cases/plate/case.yaml")
    assert isinstance(case, Case)
    assert case.pod.rtol == pytest.approx(1e-3)
    assert case.pod.product == "lumped_mass"
    assert case.snapshots.analytical.samples == 24
    assert case.snapshots.analytical.parameters["width"].max == pytest.approx(0.015)
    assert case.mesh == ROOT / "cases/plate/mesh.vtu"
    assert case.output.directory.resolve() == (ROOT / "out/plate").resolve()
    assert len(case.source_hash) == 64


def test_defaults_and_relative_paths(tmp_path):
    case = load_case(write(tmp_path, MINIMAL))
    assert case.snapshots.store == tmp_path / "s.h5"
    assert case.pod.method == "snapshots" and case.pod.rtol == 1e-4 and case.pod.max_modes is None


@pytest.mark.parametrize("extra, key, words", [
    ("pod: {rtoll: 1.0e-3}", "pod.rtoll", "did you mean 'rtol'"),
    ("pod: {rtol: 2.0}", "pod.rtol", "expected a value in (0, 1)"),
    ("pod: {rtol: 0}", "pod.rtol", "expected a value in (0, 1)"),
    ("pod: {rtol: nan}", "pod.rtol", "finite"),
    ("pod: {rtol: abc}", "pod.rtol", "expected a number"),
    ("pod: {max_modes: 2.5}", "pod.max_modes", "expected an integer"),
    ("pod: {max_modes: 0}", "pod.max_modes", "expected a value in [1, inf]"),
    ("pod: {method: svd}", "pod.method", "expected one of 'snapshots', 'tsqr', 'randomized'"),
    ("pod: [1, 2]", "pod", "expected a mapping"),
    ("output: {plot: yes please}", "output.plot", "expected true or false"),
    ("bogus: 1", "bogus", "unknown key"),
])
def test_bad_values_name_key_and_file(tmp_path, extra, key, words):
    p = write(tmp_path, MINIMAL + extra + "\n")
    with pytest.raises(CaseError) as err:
        load_case(p)
    msg = str(err.value)
    assert msg.startswith(f"{p}: {key}: "), msg
    assert words in msg, msg


@pytest.mark.parametrize("snapshots, key, words", [
    ("precision: half", "snapshots.precision", "expected one of 'double', 'single'"),
    ("strain: 1", "snapshots.strain", "expected true or false"),
    ("precision: single", "snapshots.precision", "says how python -m rom.fom writes the store, "
                                                 "and the case has no 'fom' section"),
    ("strain: true", "snapshots.strain", "and the case has no 'fom' section"),
])
def test_snapshot_store_options(tmp_path, snapshots, key, words):
    """snapshots.precision / snapshots.strain: checked, and only with a fom: section."""
    assert load_case(write(tmp_path, MINIMAL)).snapshots.precision == "double"
    assert load_case(write(tmp_path, MINIMAL)).snapshots.strain is False
    p = write(tmp_path, MINIMAL.replace("{store: s.h5}", "{store: s.h5, " + snapshots + "}"))
    with pytest.raises(CaseError) as err:
        load_case(p)
    assert str(err.value).startswith(f"{p}: {key}: ") and words in str(err.value), err.value


def test_yaml_float_without_dot_is_accepted(tmp_path):
    # YAML 1.1 reads 1e-4 as a string; the schema converts it for numeric keys only
    case = load_case(write(tmp_path, MINIMAL + "pod: {rtol: 1e-5}\n"))
    assert case.pod.rtol == 1e-5


def test_missing_required_and_missing_files(tmp_path):
    p = write(tmp_path, "name: t\nmesh: mesh.vtu\nsnapshots: {source: files}\n")
    with pytest.raises(CaseError, match=r"snapshots.store: required key is missing"):
        load_case(p)
    p = write(tmp_path, MINIMAL.replace("mesh.vtu", "nope.vtu"))
    with pytest.raises(CaseError, match=r"mesh: file not found: .*nope.vtu"):
        load_case(p)
    with pytest.raises(CaseError, match=r"case file not found"):
        load_case(tmp_path / "absent.yaml")


def test_yaml_syntax_error(tmp_path):
    p = write(tmp_path, "name: [unclosed\n")
    with pytest.raises(CaseError, match=r"not valid YAML"):
        load_case(p)


def test_nested_parameter_ranges_checked():
    with pytest.raises(CaseError, match=r"snapshots.analytical.parameters.width.max: expected a number"):
        case_from_dict({"name": "x", "mesh": str(ROOT / "cases/plate/mesh.vtu"),
                        "snapshots": {"store": "s.h5", "analytical": {
                            "parameters": {"width": {"min": 0.1, "max": "big"}}}}})


def test_reference_lists_every_key():
    ref = schema_reference()
    for key in ("`pod.rtol`", "`snapshots.analytical.parameters.<name>.min`", "`output.plot`"):
        assert key in ref
    doc = (ROOT / "docs/case-file.md").read_text()
    assert ref in doc, "docs/case-file.md is out of date: regenerate its table with " \
                       "python tools/case_reference.py"


def test_case_without_any_stage_is_an_error(tmp_path):
    p = tmp_path / "case.yaml"
    p.write_text("name: t\n")
    with pytest.raises(CaseError, match=r"nothing to do"):
        load_case(p)
    p.write_text("name: t\nsnapshots: {store: s.h5}\n")
    with pytest.raises(CaseError, match=r"mesh: required key is missing"):
        load_case(p)


def test_option_tables_take_yaml_numbers_and_booleans_as_text(tmp_path):
    """PETSc option values may be written as YAML numbers/booleans; they become strings."""
    f = tmp_path / "case.yaml"
    f.write_text("name: c\nmesh: m.inp\nsnapshots: {store: s.h5}\n"
                 "fom: {petsc_options: {pc_gamg_threshold: 0.02, mg_levels_ksp_max_it: 4, "
                 "ksp_monitor: true, ksp_rtol: 1e-12}}\n")
    (tmp_path / "m.inp").write_text("")
    case = load_case(f)
    assert case.fom.petsc_options == {"pc_gamg_threshold": "0.02", "mg_levels_ksp_max_it": "4",
                                      "ksp_monitor": "true", "ksp_rtol": "1e-12"}


def test_extends_merges_mappings_and_replaces_lists(tmp_path):
    write(tmp_path, MINIMAL + "pod: {rtol: 1e-5, max_modes: 7}\n"
                    "output: {directory: a, plot: false}\n")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "mesh2.vtu").write_text("placeholder")
    child = tmp_path / "sub" / "big.yaml"
    child.write_text("extends: ../case.yaml\nmesh: mesh2.vtu\npod: {rtol: 1e-3}\n")
    base, case = load_case(tmp_path / "case.yaml"), load_case(child)
    assert case.pod.rtol == pytest.approx(1e-3) and case.pod.max_modes == 7    # merged
    assert case.output.plot is False
    assert case.mesh == (tmp_path / "sub" / "mesh2.vtu").resolve()
    # paths of the result resolve against the extending file
    assert case.output.directory == (tmp_path / "sub" / "a").resolve()
    assert case.source_hash != base.source_hash
    # the shipped large blade case: the default one with its mesh and outputs moved
    large = read_case_mapping(ROOT / "cases/blade/large.yaml")
    default = read_case_mapping(ROOT / "cases/blade/case.yaml")
    assert large["study"] == default["study"]
    assert large["fom"] == default["fom"]                # the same 41 training loadings
    assert large["mesh"] != default["mesh"] and large["output"]["plot"] is True
    # and the demo on that mesh: the demo's training and model, the large mesh, own outputs
    large_demo = read_case_mapping(ROOT / "cases/blade/large-demo.yaml")
    demo = read_case_mapping(ROOT / "cases/blade/demo.yaml")
    assert large_demo["fom"] == demo["fom"] and large_demo["online"] == demo["online"]
    assert large_demo["mesh"] == large["mesh"]
    assert large_demo["output"]["directory"] not in (large["output"]["directory"],
                                                     demo["output"]["directory"])


@pytest.mark.parametrize("text, words", [
    ("extends: nope.yaml\n", "nope.yaml: case file not found (extended by"),
    ("extends: case.yaml\n", "extends: circular chain"),
    ("extends: [a.yaml]\n", "extends: expected the path of a case file"),
])
def test_extends_errors(tmp_path, text, words):
    p = tmp_path / "case.yaml"
    p.write_text(text)
    with pytest.raises(CaseError, match=words.replace("(", r"\(")):
        load_case(p)


def test_norton_material_hash_ignores_the_keys_added_for_other_laws():
    """Models built before the Chaboche and user-law keys existed keep loading: the hash of
    the blade's Norton section is the one they recorded."""
    from rom.online.checks import case_hashes
    case = load_case(ROOT / "cases/blade/case.yaml")
    assert case_hashes(case)["material"] == \
        "7e8682d1efc7a1e207fe778cd55ef1a1fc1cc2b58270f714659a3cd35723d564"
    hot = dataclasses.replace(case, material=dataclasses.replace(
        case.material, law="chaboche", C1=type(case.material.C1)([1e10])))
    assert case_hashes(hot)["material"] != case_hashes(case)["material"]

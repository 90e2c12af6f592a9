"""A user's law named in the case file (``material.law: module:Class``): loaded from a
module outside the package, checked against the Material protocol, and solved by the
full-order solver to the answer of the equivalent built-in law (Norton, n = 1)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from mpi4py import MPI

pytest.importorskip("petsc4py")

from rom.config import CaseError, _Ctx
from rom.fom.config import MaterialConfig
from rom.fom.loads import Dirichlet, Loads, Pressure
from rom.fom.mesh import FEMesh
from rom.fom.setup import material_from_config
from rom.fom.solver import MechanicalSolver, NewtonOptions
from rom.materials import MaterialError, Norton, Table
from rom.materials.user import check_law
from rom.meshes import solid_block

HERE = Path(__file__).parent / "user_laws"
ELASTIC = {"E": {"temperatures": [300.0, 1200.0], "values": [200e9, 140e9]},
           "nu": {"values": [0.3]},
           "alpha": {"temperatures": [300.0, 1200.0], "values": [1.2e-5, 1.6e-5]},
           "T_ref": 300.0}
ETA = {"temperatures": [300.0, 1200.0], "values": [4e11, 1e11]}


def _material(law, **extra):
    return _Ctx("<case>", Path(".")).build(MaterialConfig, {"law": law, **ELASTIC, **extra},
                                           "material")


def test_a_users_law_gives_the_builtin_answer(monkeypatch):
    monkeypatch.syspath_prepend(str(HERE))
    law = material_from_config(_material("maxwell_law:Maxwell", parameters={"eta": ETA}))
    norton = material_from_config(_material(
        "norton", K={"temperatures": ETA["temperatures"], "values": [3 * v for v in ETA["values"]]},
        n={"values": [1.0]}))
    mesh = FEMesh.from_meshio(solid_block((3, 2, 2), lengths=(0.03, 0.02, 0.02), distort=0.2,
                                          seed=5))
    loads = Loads(dirichlet=[Dirichlet("xmin")], pressure=[Pressure("xmax", -300e6)],
                  amplitude=lambda t: min(t, 1.0))
    T = 600.0 + 10000.0 * mesh.points[:, 0]
    out = []
    for m in (law, norton):
        solver = MechanicalSolver(mesh, m, loads, comm=MPI.COMM_SELF,
                                  petsc_options={"ksp_rtol": 1e-13, "ksp_atol": 1e-30},
                                  newton=NewtonOptions(rtol=1e-11))
        out.append(solver.solve(np.array([0.0, 1.0, 10.0, 100.0]), lambda t, T=T: T))
        solver.destroy()
    a, b = out
    assert b.internal[:, 6].max() > 1e-4                      # the viscous flow is real
    assert np.abs(a.u - b.u).max() <= 1e-8 * np.abs(b.u).max()
    assert np.abs(a.internal - b.internal).max() <= 1e-8 * np.abs(b.internal).max()


def test_clear_errors_for_laws_that_cannot_be_used(monkeypatch):
    monkeypatch.syspath_prepend(str(HERE))
    cases = [
        ("no_such_module:Law", {}, "cannot import module 'no_such_module'"),
        ("maxwell_law:Maxwel", {}, "has no class 'Maxwel'"),
        ("maxwell_law:Maxwell", {}, r"Maxwell\(E, T_ref, alpha, nu\) failed: .*eta"),
        ("maxwell_law:NoIntegrate", {}, r"has no method integrate\(\)"),
    ]
    for law, params, message in cases:     # 4 ways to get it wrong
        with pytest.raises(MaterialError, match=message):
            material_from_config(_material(law, parameters=params))
    with pytest.raises(CaseError, match="material.law: expected one of .* 'module:Class'"):
        _material("maxwell_law.py")
    with pytest.raises(CaseError, match="material.parameters: parameters are for a user's law"):
        _material("norton", parameters={"eta": ETA})


def test_protocol_check_names_what_is_wrong():
    class Bad:
        n_state = 2
        state_names = {"p": (slice(1, 3), "1")}

        def initial_state(self, n):
            return np.zeros((n, 2))

        def integrate(self, *args):
            return np.zeros((2, 6)), np.zeros((2, 2)), np.zeros((2, 6, 6))

    with pytest.raises(MaterialError, match=r"state_names\['p'\] must be \(slice within 0..2"):
        check_law(Bad(), "Bad")
    Bad.state_names = {"p": (slice(1, 2), "1")}
    check_law(Bad(), "Bad")
    Bad.integrate = lambda self, *a: (np.zeros((2, 6)), np.zeros((2, 3)), np.zeros((2, 6, 6)))
    with pytest.raises(MaterialError, match=r"state of shape \(2, 3\) \(expected \(2, 2\)"):
        check_law(Bad(), "Bad")
    check_law(Norton(E=2e11, nu=0.3, K=Table([0.0], [1e9]), n=3.0))


def test_model_file_keeps_a_users_law_and_its_parameters():
    """The material JSON of a reduced model (rom.online.model) round-trips the law's name
    and its tables, so that a saved model rebuilds the user's law when loaded."""
    from rom.online.model import material_from_json, material_to_json
    cfg = _material("maxwell_law:Maxwell", parameters={"eta": ETA})
    back = material_from_json(material_to_json(cfg))
    assert back == cfg and back.parameters["eta"].values == ETA["values"]
    chaboche = _material("chaboche", K={"values": [1e8]}, n={"values": [5]},
                         C1={"temperatures": [300, 900], "values": [1e11, 5e10]})
    assert material_from_json(material_to_json(chaboche)) == chaboche

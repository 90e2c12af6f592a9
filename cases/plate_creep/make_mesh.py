"""Regenerate cases/plate_creep/mesh.inp: a notched bar (hex8) with boundary groups.

python cases/plate_creep/make_mesh.py [nx ny nz]   (default 8 3 1: CI size)
"""
import sys
from pathlib import Path

import meshio
import numpy as np

from rom.meshes import solid_block

L, H, T = 0.04, 0.01, 0.002          # bar length, half height, thickness [m]


def notch(x: np.ndarray) -> np.ndarray:
    """Narrow the bar around x = L (the symmetry plane): a U notch of depth 30 %."""
    x = x.copy()
    x[:, 1] *= 1.0 - 0.3 * np.exp(-((x[:, 0] - L) / (0.25 * L)) ** 2)
    return x


def make(n=(8, 3, 1)):
    return solid_block(tuple(n), lengths=(L, H, T), mapping=notch)


if __name__ == "__main__":
    n = tuple(int(a) for a in sys.argv[1:4]) or (8, 3, 1)
    mesh = make(n)
    out = Path(__file__).with_name("mesh.inp")
    meshio.write(out, mesh)
    print(f"{out}: {len(mesh.points)} nodes, {3 * len(mesh.points)} dofs")

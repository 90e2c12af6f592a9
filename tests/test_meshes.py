"""Mesh generators and lumped mass: exact volumes, positive Jacobians."""
from __future__ import annotations

import numpy as np
import pytest

from rom.meshes import box, hex8_volumes, lumped_mass, plate_with_hole


def test_box_volume_exact_even_when_distorted():
    m = box((3, 4, 2), (1.0, 2.0, 0.5))
    assert lumped_mass(m).sum() == pytest.approx(1.0, rel=1e-14)
    rng = np.random.default_rng(0)
    pts = m.points + 0.05 * rng.standard_normal(m.points.shape) * (m.points > 0) * (m.points < [1, 2, .5])
    # volume of a trilinear hex mesh with moved interior nodes is unchanged (the boundary is fixed)
    assert hex8_volumes(pts, m.cells[0].data).sum() == pytest.approx(1.0, rel=1e-12)


def test_plate_with_hole_volume_converges_to_exact():
    exact = (0.1 ** 2 - np.pi * 0.01 ** 2) * 0.005
    errs = []
    for n in (16, 32, 64):
        m = plate_with_hole(n_theta=n, n_radial=4, n_thick=1)
        errs.append(abs(lumped_mass(m).sum() - exact) / exact)
    rates = np.log2(np.array(errs[:-1]) / errs[1:])
    assert np.all(rates > 1.9)   # polygonal hole: area error O(h^2)


def test_inverted_cell_reported():
    m = box((1, 1, 1))
    cells = m.cells[0].data[:, [0, 3, 2, 1, 4, 7, 6, 5]]
    with pytest.raises(ValueError, match="cell 0 is inverted"):
        hex8_volumes(m.points, cells)

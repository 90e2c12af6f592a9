"""A hand-set indicator_tol below the model's own training indicators is warned about
(rom.online.training.tolerance_below_training)."""
from __future__ import annotations

import numpy as np

from rom.online.training import TrainingCheck, tolerance_below_training


def _check(indicator, err_p):
    n = len(indicator)
    return TrainingCheck([f"train{k}" for k in range(n)], np.full(n, 1e-4), np.asarray(err_p),
                         np.asarray(indicator), (0.01, 0.02))


def test_warns_when_loadings_within_targets_would_be_flagged():
    chk = _check([3.9e-4, 1.7e-3, 8e-4, 5e-3], [0.005, 0.01, 0.015, 0.05])
    msg = tolerance_below_training(5e-4, chk)
    # train3 is above its target (5 % on p): flagging it is right, not a false alarm
    assert "below the indicator of 2 of the model's 3 training loading(s)" in msg
    assert "train1, train2" in msg and "up to 0.0017" in msg and "train3" not in msg
    assert tolerance_below_training(2e-3, chk) == ""


def test_diverged_loadings_do_not_count():
    chk = _check([np.inf, 1e-4], [np.inf, 0.001])
    assert tolerance_below_training(5e-4, chk) == ""

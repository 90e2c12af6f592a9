"""Optional plots (matplotlib is an optional extra; imported only when a plot is made)."""
from __future__ import annotations

from pathlib import Path

import numpy as np


def have_matplotlib() -> bool:
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return False
    return True


def singular_value_decay(path: str | Path, singular_values: np.ndarray, n_kept: int, *,
                         rtol: float, title: str = "") -> Path:
    """PNG of normalized singular values and of the truncation error sqrt(sum_{i>n} s_i^2 / sum s_i^2).

    Raises ImportError when matplotlib is missing (callers check :func:`have_matplotlib`).
    """
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    s = np.asarray(singular_values, dtype=float)
    e2 = s ** 2
    tail = np.sqrt(np.maximum(e2.sum() - np.cumsum(e2), 0.0) / e2.sum())
    n = np.arange(1, len(s) + 1)
    fig, ax = plt.subplots(figsize=(6.4, 4.2), dpi=120)
    ax.semilogy(n, s / s[0], "o-", ms=3, label=r"$\sigma_i/\sigma_1$")
    ax.semilogy(n, np.maximum(tail, 1e-17), "s-", ms=3, label=r"truncation error after $i$ modes")
    ax.axhline(rtol, color="gray", ls="--", lw=1, label=f"rtol = {rtol:g}")
    ax.axvline(n_kept, color="C3", ls=":", lw=1, label=f"{n_kept} modes kept")
    ax.set_xlabel("mode index i")
    ax.set_title(title or "POD singular values")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path)
    plt.close(fig)
    return path

"""Text table and plot of local bases, for the offline command's report."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["format_summary", "plot_local_bases"]


def format_summary(lb, criterion: Any = None) -> str:
    """A text table of the clusters of a :class:`LocalBases` (one line per cluster).

    Columns: cluster, medoid (item index or simulation id), items, snapshot columns in
    the POD (overlap included), overlap, modes, captured energy, mean / max training
    projection error of the cluster's own snapshots. A line with the totals follows, and
    the criterion's verdict if a :class:`CriterionResult` is given.
    """
    rows = lb.summary_rows()
    item = "snapshots" if lb.level == "snapshots" else "simulations"
    head = (f"local bases: k={lb.k}, dissimilarity={lb.metric}, level={lb.level}, "
            f"rtol={lb.params.get('rtol', float('nan')):g}, overlap={lb.params.get('overlap', 0)}"
            f", k-medoids cost={lb.cost:.4g}")
    lines = [head,
             (f"  {'cluster':>7s} {'medoid':>8s} {item:>11s} {'columns':>8s} {'overlap':>7s} "
             f"{'modes':>5s} {'energy':>12s} {'err mean':>9s} {'err max':>9s}")]
    for r in rows:
        lines.append(f"  {r['cluster']:>7d} {r['medoid']!s:>8s} {r['items']:>11d} "
                     f"{r['columns']:>8d} {r['overlap']:>7d} {r['modes']:>5d} "
                     f"{r['energy']:>12.10f} {r['err_mean']:>9.2e} {r['err_max']:>9.2e}")
    e = lb.training_errors
    lines.append(f"  {'total':>7s} {'':>8s} {int(lb.sizes.sum()):>11d} "
                 f"{sum(r['columns'] for r in rows):>8d} {'':>7s} {int(lb.n_modes.sum()):>5d} "
                 f"{'':>12s} {e.mean() if e.size else 0.0:>9.2e} "
                 f"{e.max() if e.size else 0.0:>9.2e}")
    if criterion is not None:
        lines.append("  criterion: " + criterion.summary())
    return "\n".join(lines)


def plot_local_bases(path: str | Path, lb, *, title: str = "") -> Path:
    """PNG with three panels: cluster sizes and basis sizes, the dissimilarity matrix sorted
    by cluster, and the normalized singular values of each local basis.

    matplotlib is imported here only (an optional dependency); raises ImportError when it
    is missing (check :func:`rom.plots.have_matplotlib`).
    """
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    k = lb.k
    fig, axes = plt.subplots(1, 3, figsize=(14, 4.2), dpi=110)
    ax = axes[0]
    pos = np.arange(k)
    ax.bar(pos - 0.2, lb.sizes, 0.4, label=f"{lb.level} per cluster")
    ax.bar(pos + 0.2, lb.n_modes, 0.4, label="modes of the local basis")
    ax.set_xticks(pos)
    ax.set_xlabel("cluster")
    ax.legend(fontsize=8)
    ax.set_title("cluster and basis sizes")
    ax = axes[1]
    order = np.lexsort((np.arange(lb.labels.size), lb.labels))
    im = ax.imshow(lb.dissimilarity[np.ix_(order, order)], cmap="viridis", interpolation="nearest")
    edges = np.cumsum(lb.sizes)[:-1] - 0.5
    for e in edges:
        ax.axhline(e, color="w", lw=0.6)
        ax.axvline(e, color="w", lw=0.6)
    fig.colorbar(im, ax=ax, shrink=0.8)
    ax.set_title(f"{lb.metric} dissimilarity, sorted by cluster")
    ax = axes[2]
    for c, b in enumerate(lb.bases):                     # loop over clusters
        s = np.asarray(b.all_singular_values, dtype=float)
        if s.size and s[0] > 0:
            ax.semilogy(np.arange(1, s.size + 1), s / s[0], ".-", ms=3,
                        label=f"cluster {c} ({b.n_modes} kept)")
    ax.set_xlabel("mode index")
    ax.set_title(r"local POD: $\sigma_i / \sigma_1$")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path)
    plt.close(fig)
    return path

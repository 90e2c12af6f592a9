"""The case-study report: Markdown with PNG plots (matplotlib, imported only here)."""
from __future__ import annotations

from pathlib import Path

import numpy as np

__all__ = ["detection", "write_report"]

_COLORS = {"inside": "tab:blue", "outside": "tab:red", "random": "tab:green"}


def detection(study) -> dict:
    """Indicator against true error over the queries (unenriched reduced model).

    ``exceeds``: queries whose error exceeds the target (displacement or p);
    ``flagged``: queries whose indicator exceeds the tolerance at some step (or whose
    stress residual exceeds ``online.stress_indicator_tol``, when the model uses one);
    ``missed``: exceeding but not flagged; ``spearman``: rank correlation of the largest
    indicator with the largest error (relative to its target) over the queries;
    ``separating``: (largest indicator of a query within its targets, smallest of a query
    above them), NaN when a side is empty: any tolerance between the two would have
    flagged exactly the queries above target.
    """
    tu, tp = study.error_tol
    err = np.array([max(q.max_err[0] / tu, q.max_err[1] / tp) for q in study.queries])
    eta = np.array([float(np.max(q.indicator)) for q in study.queries])
    names = [q.name for q in study.queries]
    exceeds = err > 1.0
    flagged = eta > study.tol
    stress_tol = getattr(study, "stress_tol", None)
    if stress_tol is not None:
        flagged |= np.array([getattr(q, "stress_indicator", None) is not None and
                             float(np.max(q.stress_indicator)) > stress_tol
                             for q in study.queries], bool)
    rho = float("nan")
    if len(err) > 2 and np.all(np.isfinite(err)) and np.ptp(err) > 0 and np.ptp(eta) > 0:
        from scipy.stats import spearmanr
        rho = float(spearmanr(err, eta).statistic)
    ok, bad = eta[~exceeds & np.isfinite(eta)], eta[exceeds & np.isfinite(eta)]
    separating = (float(ok.max()) if ok.size else float("nan"),
                  float(bad.min()) if bad.size else float("nan"))
    return {"err": err, "eta": eta, "exceeds": exceeds, "flagged": flagged,
            "separating": separating,
            "missed": [n for n, e, f in zip(names, exceeds, flagged) if e and not f],
            "false_alarms": [n for n, e, f in zip(names, exceeds, flagged) if f and not e],
            "spearman": rho}


def _fmt(x: float, spec: str = ".2e") -> str:
    return "diverged" if not np.isfinite(x) else format(x, spec)


def _x(v: float) -> str:
    """A speed-up factor: one decimal below 10 (an enriched query may be slower)."""
    return "-" if not np.isfinite(v) else f"{v:.1f}x" if v < 10 else f"{v:.0f}x"


def write_report(study, directory: str | Path) -> Path:
    """Write ``report.md`` and its plots into ``directory``; return the Markdown path."""
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    det = detection(study)
    plots = _plots(study, det, d)
    tu, tp = study.error_tol
    qs = study.queries
    reused = [q for q in qs if q.hf_reused]
    L = [f"# Case study `{study.case_name}`: reduced model against the full-order solver", ""]
    L += [f"- mesh: {study.n_dofs:,} dofs, {study.n_qp:,} integration points; "
          f"{study.times.size - 1} time steps to t = {study.times[-1]:g} s",
          f"- reduced model `{study.model_path.name}`: {study.n_modes} displacement modes, "
          f"{study.n_points} reduced integration points "
          f"({int(np.sum(study.point_imposed))} imposed by the indicator)",
          f"- indicator tolerance {study.tol:.3g} ({study.tol_source or 'given'})"
          + ("" if study.stress_tol is None else
             f", and {study.stress_tol:.3g} on the stress residual "
             "(online.stress_indicator_tol; a query is flagged by either)")
          + f"; error targets {tu:g} (displacement), {tp:g} (p)",
          f"- full-order solver on {study.ranks} MPI rank(s) ("
          + ("not set up: every full-order answer stored" if len(reused) == len(qs)
             else f"setup {study.hf_setup_seconds:.2f} s, not counted; the preconditioner's "
                  "set-up is counted in the step that makes it")
          + f"); reduced model on one process (set-up {1e3 * study.rom_setup_seconds:.0f} ms "
            "once, not counted: the indicator's Gappy-POD factorization, single-precision "
            "mode strains)",
          "- errors per step relative to the largest norm of the full-order field over the "
          "history (docs/study.md)"]
    if reused:
        when = sorted({q.hf_reused[:10] for q in reused})
        L += [f"- full-order answers of {len(reused)} of {len(qs)} queries reused from "
              f"`references/` (stored by an earlier study on {', '.join(when)}; their "
              "per-step timings are those of that run)"]
    other = sorted({q.hf_ranks for q in qs} - {study.ranks})
    if other:
        L += [f"- **note**: some full-order answers were computed on "
              f"{', '.join(map(str, other))} rank(s), not {study.ranks}; see HF ranks per query"]
    tr = study.training
    if tr:
        L += [f"- the reduced model on its {len(tr['names'])} training loadings (docs/online.md, "
              f"training check): max e_u {_fmt(max(tr['err_u']))}, max e_p "
              f"{_fmt(max(tr['err_p']))}, largest indicator {_fmt(max(tr['indicator']))}"]
    cv = study.crossval
    if cv:
        eta = np.asarray(cv["indicator"], float)
        hi = np.maximum(np.asarray(cv["err_u"]) / tu, np.asarray(cv["err_p"]) / tp) > 1.0
        L += [f"- cross-validation (each training loading left out of the bases in turn, "
              f"docs/online.md): max e_u {_fmt(max(cv['err_u']))}, max e_p "
              f"{_fmt(max(cv['err_p']))}; {int(hi.sum())} of {hi.size} above the targets"
              + (f" (smallest indicator {_fmt(float(eta[hi].min()))})" if hi.any() else "")
              + (f", largest indicator of those within {_fmt(float(eta[~hi].max()))}"
                 if (~hi).any() else "")
              + (f"; **note**: the model was calibrated on the targets {cv['targets'][0]:g} / "
                 f"{cv['targets'][1]:g}, not this study's"
                 if "targets" in cv and tuple(cv["targets"]) != (tu, tp) else "")]
    if len(qs) < study.n_planned:
        L += [f"- **partial**: {len(qs)} of {study.n_planned} queries answered (the report is "
              "rewritten after every query; the study stopped or is still running)"]
    cut = [f"{q.name} ({len(q.hf_cuts)})" for q in qs if q.hf_cuts]
    L += ["- full-order time steps halved after a failed Newton (its time discretization then "
          "differs from the reduced model's): " + (", ".join(cut) if cut else "none"), ""]
    L += ["## Summary by family", "",
          "| family | queries | max e_u | max e_p | above target | flagged | missed | "
          "enriched max e_u | enriched max e_p | HF steps (mean) | median speed-up | "
          "median speed-up with enrichment |",
          "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for fam in ("inside", "outside", "random"):
        sel = [i for i, q in enumerate(qs) if q.family == fam]
        if not sel:
            continue
        g = [qs[i] for i in sel]
        enr = [q for q in g if q.err_u_enriched is not None]
        L.append(
            f"| {fam} | {len(g)} | {_fmt(max(q.max_err[0] for q in g))} | "
            f"{_fmt(max(q.max_err[1] for q in g))} | {int(det['exceeds'][sel].sum())} | "
            f"{int(det['flagged'][sel].sum())} | "
            f"{sum(qs[i].name in det['missed'] for i in sel)} | "
            + (f"{_fmt(max(q.err_u_enriched.max() for q in enr))} | "
               f"{_fmt(max(q.err_p_enriched.max() for q in enr))} | "
               f"{np.mean([len(q.enrichments) for q in enr]):.1f} | " if enr else "- | - | - | ")
            + f"{np.nanmedian([q.speedup for q in g]):.0f}x | "
            + (f"{_x(np.nanmedian([q.speedup_enriched for q in enr]))} |" if enr else "- |"))
    L += ["", "## Error indicator", "",
          f"Spearman rank correlation of the largest indicator with the largest error "
          f"(relative to its target) over {len(qs)} queries: **{det['spearman']:.2f}**. "
          f"Queries above an error target: {int(det['exceeds'].sum())}, flagged by the "
          f"indicator: {int(det['flagged'].sum())}; missed detections: "
          f"{', '.join(det['missed']) or 'none'}; false alarms: "
          f"{', '.join(det['false_alarms']) or 'none'}."]
    lo, hi = det["separating"]
    if np.isfinite(lo) and np.isfinite(hi):
        L += ["", f"Largest indicator of a query within its targets: {lo:.3g}; smallest of a "
                  f"query above them: {hi:.3g}. "
              + (f"Any tolerance in between would have flagged exactly the queries above "
                 f"target (read off these results; the tolerance used is {study.tol:g})."
                 if lo < hi else "No tolerance separates them on these queries.")]
    L += [""]
    L += ["## Queries", "",
          "| query | family | max e_u | max e_p | max indicator | flagged | HF steps | "
          "enriched e_u | enriched e_p | HF ms/step | HF ranks | ROM ms/step | speed-up | "
          "HF s (query) | enriched s (query) | speed-up with enrichment |",
          "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for q, f in zip(qs, det["flagged"]):
        enr = q.err_u_enriched is not None
        L.append(f"| {q.name} | {q.family} | {_fmt(q.max_err[0])} | {_fmt(q.max_err[1])} | "
                 f"{_fmt(float(np.max(q.indicator)))} | {'yes' if f else 'no'} | "
                 f"{len(q.enrichments) if enr else '-'} | "
                 f"{_fmt(q.err_u_enriched.max()) if enr else '-'} | "
                 f"{_fmt(q.err_p_enriched.max()) if enr else '-'} | "
                 f"{1e3 * np.median(q.hf_seconds):.1f} | "
                 f"{q.hf_ranks}{' (stored)' if q.hf_reused else ''} | "
                 f"{1e3 * np.nanmedian(q.rom_seconds):.2f} | {q.speedup:.0f}x | "
                 f"{np.sum(q.hf_seconds):.1f} | "
                 + (f"{q.enriched_seconds:.1f} | {_x(q.speedup_enriched)} |" if enr
                    else "- | - |"))
    ev = [(q.name, e) for q in qs for e in q.enrichments]
    if ev:
        L += ["", "## Enrichment events", "",
              "| query | step | indicator before | seconds | of which full-order step | "
              "bases | ECM | modes after | points after |",
              "|---|---|---|---|---|---|---|---|---|"]
        L += [f"| {n} | {e['step']} | {_fmt(float(e['indicator_before']))} | "
              f"{e['seconds']:.2f} | "
              + " | ".join(f"{e[k]:.2f}" if k in e else "-" for k in (
                  "full_order_step_seconds", "bases_seconds", "ecm_seconds"))
              + f" | {e['n_modes']} | {e['n_points']} |" for n, e in ev]
    L += _cycles_section(qs, d)
    if plots:
        L += ["", "## Plots", ""] + [f"![{t}]({p.name})" for t, p in plots]
    files = [f for q in qs for f in q.files]
    if files:
        L += ["", "## ParaView files (ROM and full-order fields side by side)", ""]
        enriched = [q.err_u_enriched is not None for q in qs for _ in q.files]
        L += [f"- `{Path(f).name}`: u_rom, u_hf, u_error, temperature"
              + (", u_enriched, u_enriched_error" if e else "") + "; cell fields p_rom, "
              "p_hf, von_mises_rom, von_mises_hf"
              + (", p_enriched, von_mises_enriched" if e else "")
              for f, e in zip(files, enriched)]
    path = d / "report.md"
    path.write_text("\n".join(L) + "\n")
    return path


def _plots(study, det, d: Path) -> list[tuple[str, Path]]:
    from ..plots import have_matplotlib
    if not have_matplotlib():
        return []
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    out = []
    # singular values of the bases of the model
    fig, ax = plt.subplots(figsize=(5, 3.5))
    for name, s in study.singular_values.items():
        s = np.asarray(s)
        if s.size:
            ax.semilogy(np.arange(1, s.size + 1), s / s[0], "o-", ms=3, label=name)
    ax.set(xlabel="mode", ylabel="singular value / first", title="POD bases of the model")
    ax.legend()
    out.append(("singular values", _save(fig, d / "singular_values.png")))
    # reduced integration points on the mesh
    fig = plt.figure(figsize=(5, 5))
    ax = fig.add_subplot(projection="3d")
    P = study.mesh_points
    sub = P[:: max(1, len(P) // 4000)]
    ax.scatter(*sub.T, s=2, c="0.55", alpha=0.35, linewidths=0)
    X, imp = study.point_coords, study.point_imposed
    ax.scatter(*X[~imp].T, s=9, c="tab:red", label=f"ECM points ({int((~imp).sum())})")
    ax.scatter(*X[imp].T, s=14, c="tab:blue", marker="^",
               label=f"indicator (Q-DEIM) points ({int(imp.sum())})")
    ax.set(xlabel="x", ylabel="y", zlabel="z", title="reduced integration points")
    ax.set_box_aspect(np.ptp(P, axis=0) + 1e-12)
    ax.legend(loc="upper left", fontsize=7)
    out.append(("reduced integration points", _save(fig, d / "reduced_points.png")))
    # error and indicator per step, per query
    t = study.times[1:]
    fig, axs = plt.subplots(1, 3, figsize=(13, 3.8), sharex=True)
    for q in study.queries:
        c = _COLORS.get(q.family, "k")
        axs[0].semilogy(t, np.maximum(q.err_u, 1e-16), c=c, lw=0.8)
        axs[1].semilogy(t, np.maximum(q.err_p, 1e-16), c=c, lw=0.8)
        axs[2].semilogy(t, np.maximum(q.indicator, 1e-16), c=c, lw=0.8)
        if q.err_u_enriched is not None and q.enrichments:
            axs[0].semilogy(t, np.maximum(q.err_u_enriched, 1e-16), c=c, ls=":", lw=0.8)
            axs[1].semilogy(t, np.maximum(q.err_p_enriched, 1e-16), c=c, ls=":", lw=0.8)
    tu, tp = study.error_tol
    axs[0].axhline(tu, c="k", ls="--", lw=0.8)
    axs[1].axhline(tp, c="k", ls="--", lw=0.8)
    axs[2].axhline(study.tol, c="k", ls="--", lw=0.8)
    for ax, title in zip(axs, ("displacement error", "p error", "indicator")):
        ax.set(xlabel="t [s]", title=title)
    for fam, c in _COLORS.items():
        axs[2].plot([], [], c=c, label=fam)
    axs[2].plot([], [], c="k", ls=":", label="enriched")
    axs[2].legend(fontsize=7)
    out.append(("error and indicator per time step", _save(fig, d / "error_indicator.png")))
    # indicator against error, one point per query
    fig, ax = plt.subplots(figsize=(4.5, 4))
    for q, e, eta in zip(study.queries, det["err"], det["eta"]):
        ax.loglog(max(e, 1e-8), max(eta, 1e-12), "o", c=_COLORS.get(q.family, "k"), ms=4)
    ax.axvline(1.0, c="k", ls="--", lw=0.8)
    ax.axhline(study.tol, c="k", ls="--", lw=0.8)
    ax.set(xlabel="max error / target", ylabel="max indicator",
           title=f"Spearman {det['spearman']:.2f}")
    out.append(("indicator against true error", _save(fig, d / "indicator_vs_error.png")))
    return out


def _cycles_section(qs, d: Path) -> list[str]:
    """The cycles at the critical point (a periodic loading): per query and cycle the
    stress range, mean stress and p increment of both answers, the time per cycle, and
    the hysteresis loops of the first and last cycles (a plot per query)."""
    qs = [q for q in qs if q.cycles is not None and q.cycles["hf"]]
    if not qs:
        return []
    c0 = qs[0].cycles
    L = ["", "## Cycles at the critical point", "",
         f"Integration point {c0['point']} at ({', '.join(f'{x:.4g}' for x in c0['coords'])}) "
         "m, the largest p of the training (`meta['critical_point']`); stresses along the "
         "full-order answer's principal direction at that point "
         f"({', '.join(f'{x:.3f}' for x in c0['direction'])} for `{qs[0].name}`); ranges and "
         "means in MPa, relative differences against the full-order answer; time per cycle "
         "as the user waits (the reduced one with its enrichments). docs/study.md, "
         "\"Cycles\"."]
    for q in qs:
        c = q.cycles
        kind = "enriched" if c["enriched"] else "reduced"
        L += ["", f"### `{q.name}` ({kind} model)", "",
              "| cycle | range HF | range ROM | diff | mean HF | mean ROM | diff / range | "
              "dp HF | dp ROM | diff | HF s | ROM s | speed-up |",
              "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
        for h, r, th, tr in zip(c["hf"], c["rom"], c["hf_seconds"], c["rom_seconds"]):
            dr = (r["stress_range"] - h["stress_range"]) / h["stress_range"]
            dm = (r["mean_stress"] - h["mean_stress"]) / h["stress_range"]
            dp = (r["dp"] - h["dp"]) / h["dp"] if h["dp"] > 0 else float("nan")
            L.append(f"| {h['cycle']} | {h['stress_range'] / 1e6:.1f} | "
                     f"{r['stress_range'] / 1e6:.1f} | {dr:+.2%} | {h['mean_stress'] / 1e6:.1f} | "
                     f"{r['mean_stress'] / 1e6:.1f} | {dm:+.2%} | {_fmt(h['dp'])} | "
                     f"{_fmt(r['dp'])} | {dp:+.2%} | {th:.2f} | {tr:.2f} | {_x(th / tr)} |")
        th, tr, tt = sum(c["hf_seconds"]), sum(c["rom_seconds"]), q.temperature_seconds
        if np.isfinite(tt):
            L += ["", f"All {len(c['hf'])} cycles as the user waits, the temperature field "
                      f"({tt:.2f} s) counted on both sides: full order {th + tt:.1f} s, "
                      f"reduced {tr + tt:.1f} s, speed-up {_x((th + tt) / (tr + tt))} "
                      f"(mechanics alone {_x(th / tr)})."]
        path = _loops_plot(q, d)
        if path is not None:
            L += ["", f"![hysteresis loops, {q.name}]({path.name})"]
    return L


def _loops_plot(q, d: Path) -> Path | None:
    from ..plots import have_matplotlib
    if not have_matplotlib():
        return None
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    c = q.cycles
    fig, ax = plt.subplots(figsize=(5, 4))
    for k, ls in ((0, "-"), (-1, "--")):             # first and last cycles
        h, r = c["hf"][k], c["rom"][k]
        ax.plot(h["strain_nn"] * 1e2, h["stress_nn"] / 1e6, c="k", ls=ls, lw=1,
                label=f"full order, cycle {h['cycle']}")
        ax.plot(r["strain_nn"] * 1e2, r["stress_nn"] / 1e6, c="tab:red", ls=ls, lw=1,
                marker="o", ms=2, label=f"reduced, cycle {r['cycle']}")
    ax.set(xlabel="mechanical strain along n [%]", ylabel="stress along n [MPa]",
           title=f"{q.name}: critical point {c['point']}")
    ax.legend(fontsize=7)
    return _save(fig, d / f"cycles_{q.name}.png")


def _save(fig, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    import matplotlib.pyplot as plt
    plt.close(fig)
    return path

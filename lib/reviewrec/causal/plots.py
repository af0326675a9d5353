"""PNG figures for causal results (inputs are the small result dicts, never DataFrames)."""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from reviewrec.report import html as H


def group_means(rows: Sequence[dict[str, Any]], out_dir: str, name: str, title: str,
                treat_time: float | None = None) -> str:
    plt = H.plt()
    fig, ax = plt.subplots(figsize=(6, 3.5))
    for g in sorted({r["group"] for r in rows}, key=str):
        pts = [(r["time"], r["mean"]) for r in rows if r["group"] == g]
        ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", label=str(g))
    if treat_time is not None:
        ax.axvline(treat_time, color="grey", ls="--", lw=1)
    ax.set_title(title)
    ax.legend()
    return H.savefig(fig, out_dir, name)


def event_study(es: dict[str, Any], out_dir: str, name: str, title: str) -> str:
    plt = H.plt()
    fig, ax = plt.subplots(figsize=(6, 3.5))
    c = es["coefficients"]
    ks = [r["rel_time"] for r in c]
    ax.errorbar(ks, [r["coef"] for r in c], yerr=[[r["coef"] - r["ci_low"] for r in c],
                                                   [r["ci_high"] - r["coef"] for r in c]], fmt="o", capsize=3)
    ax.axhline(0, color="grey", lw=1)
    ax.axvline(es["ref"] + 0.5, color="grey", ls="--", lw=1)
    ax.set_xlabel("periods relative to treatment")
    ax.set_title(title)
    return H.savefig(fig, out_dir, name)


def rd_binned(bins: Sequence[dict[str, Any]], out_dir: str, name: str, title: str, cutoff: float,
              fit: dict[str, Any] | None = None) -> str:
    plt = H.plt()
    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.scatter([b["x_mean"] for b in bins], [b["y_mean"] for b in bins], s=12)
    ax.axvline(cutoff, color="grey", ls="--", lw=1)
    if fit:
        h = fit["h"]
        for side, coefs in ((-1, fit["fit_left"]), (1, fit["fit_right"])):
            xs = [cutoff + side * h * t / 20 for t in range(21)]
            ax.plot(xs, [sum(c * (x - cutoff) ** j for j, c in enumerate(coefs)) for x in xs], color="C1")
    ax.set_title(title)
    return H.savefig(fig, out_dir, name)


def density(dt: dict[str, Any], out_dir: str, name: str, title: str, cutoff: float) -> str:
    plt = H.plt()
    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.bar([b["mid"] for b in dt["bins"]], [b["height"] for b in dt["bins"]], width=dt["bin_width"], alpha=0.6)
    ax.axvline(cutoff, color="grey", ls="--", lw=1)
    ax.set_title(f"{title} (theta {dt['theta']:.3f}, p {dt['p_value']:.3f})")
    return H.savefig(fig, out_dir, name)


def overlap(hist: Sequence[dict[str, Any]], out_dir: str, name: str, title: str) -> str:
    plt = H.plt()
    fig, ax = plt.subplots(figsize=(6, 3.5))
    for t, lab in ((0, "control"), (1, "treated")):
        rows = [r for r in hist if r["treated"] == t]
        tot = sum(r["count"] for r in rows) or 1
        ax.bar([r["left"] for r in rows], [r["count"] / tot for r in rows],
               width=rows[0]["width"] if rows else 0.1, align="edge", alpha=0.5, label=lab)
    ax.set_xlabel("propensity score")
    ax.set_ylabel("share of group")
    ax.set_title(title)
    ax.legend()
    return H.savefig(fig, out_dir, name)


def love_plot(balance: Sequence[dict[str, Any]], out_dir: str, name: str, title: str) -> str:
    plt = H.plt()
    fig, ax = plt.subplots(figsize=(6, 0.4 * len(balance) + 1.5))
    ys = list(range(len(balance)))
    ax.scatter([abs(b["smd_before"]) for b in balance], ys, label="before")
    if balance and "smd_after" in balance[0]:
        ax.scatter([abs(b["smd_after"]) for b in balance], ys, label="after", marker="x")
    ax.axvline(0.1, color="red", ls="--", lw=1)
    ax.set_yticks(ys)
    ax.set_yticklabels([b["covariate"] for b in balance])
    ax.set_xlabel("|standardized mean difference|")
    ax.set_title(title)
    ax.legend()
    return H.savefig(fig, out_dir, name)


def curves(metrics: dict[str, dict[str, Any]], key: str, out_dir: str, name: str, title: str) -> str:
    plt = H.plt()
    fig, ax = plt.subplots(figsize=(5, 4))
    for m, r in metrics.items():
        ax.plot(r["curve"]["x"], r["curve"][key], label=m)
    ax.plot([0, 1], [0, 1], color="grey", ls="--", lw=1, label="random")
    ax.set_xlabel("fraction targeted (by predicted uplift)")
    ax.set_ylabel(f"normalised {key} curve")
    ax.set_title(title)
    ax.legend()
    return H.savefig(fig, out_dir, name)


def qini_per_row(metrics: dict[str, dict[str, Any]], out_dir: str, name: str, title: str) -> str:
    """Unnormalised Qini curves (per row, outcome units), one panel per metric, each with its
    random-targeting line; readable even when a metric's overall difference is near zero."""
    plt = H.plt()
    fig, axes = plt.subplots(1, len(metrics), figsize=(4.5 * len(metrics), 3.8), squeeze=False)
    for ax, (m, r) in zip(axes[0], metrics.items(), strict=False):
        xs, ys = r["curve"]["x"], r["curve"]["qini_per_row"]
        ax.plot(xs, ys, label="model")
        ax.plot([0, 1], [0, ys[-1]], color="grey", ls="--", lw=1, label="random")
        ax.set_title(m)
        ax.set_xlabel("fraction targeted")
        ax.set_ylabel("Qini / rows")
        ax.legend()
    fig.suptitle(title)
    return H.savefig(fig, out_dir, name)


def quadrant_scatter(points: Sequence[tuple[float, float]], out_dir: str, name: str, xlabel: str, ylabel: str) -> str:
    plt = H.plt()
    fig, ax = plt.subplots(figsize=(5, 5))
    ax.scatter([p[0] for p in points], [p[1] for p in points], s=4, alpha=0.4)
    ax.axhline(0, color="grey", lw=1)
    ax.axvline(0, color="grey", lw=1)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title("predicted uplift, sample of rows")
    return H.savefig(fig, out_dir, name)


def subgroup_forest(rows: Sequence[dict[str, Any]], out_dir: str, name: str, title: str) -> str:
    plt = H.plt()
    rows = [r for r in rows if "uplift" in r]
    fig, ax = plt.subplots(figsize=(6, 0.35 * len(rows) + 1.5))
    ys = list(range(len(rows)))
    ax.errorbar([r["uplift"] for r in rows], ys, xerr=[[r["uplift"] - r["ci_low"] for r in rows],
                                                       [r["ci_high"] - r["uplift"] for r in rows]], fmt="o", capsize=2)
    ax.axvline(0, color="grey", lw=1)
    ax.set_yticks(ys)
    ax.set_yticklabels([f"{r['feature']} {r['bin']}" for r in rows], fontsize=7)
    ax.set_title(title)
    return H.savefig(fig, out_dir, name)

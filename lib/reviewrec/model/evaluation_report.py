"""The evaluation report: <root>/report/model/{metrics.json, index.html, *.png}."""
from __future__ import annotations

import json
import os
from typing import Any

import numpy as np
from pyspark.sql import SparkSession

from reviewrec import io
from reviewrec import schema as S
from reviewrec.model.metrics import BOOTSTRAP_METRICS, ERROR_METRICS
from reviewrec.report import html as H

# The headline metrics (the log line, the ensemble members' table).
SUMMARY = ("accuracy", "macro_f1", "weighted_f1", "rmse", "mae")
STARS = list(range(1, S.NUM_STAR_CLASSES + 1))


def _plot_confusion(plt: Any, cm: list[list[int]], title: str) -> Any:
    a = np.asarray(cm, dtype=np.float64)
    norm = a / np.maximum(a.sum(axis=1, keepdims=True), 1)
    fig, ax = plt.subplots(figsize=(4.6, 4))
    im = ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    for i in range(a.shape[0]):
        for j in range(a.shape[1]):
            ax.text(j, i, f"{int(a[i, j])}\n{norm[i, j]:.2f}", ha="center", va="center", fontsize=7,
                    color="white" if norm[i, j] > 0.5 else "black")
    ax.set_xticks(range(5), STARS)
    ax.set_yticks(range(5), STARS)
    ax.set_xlabel("predicted star")
    ax.set_ylabel("true star")
    ax.set_title(title)
    fig.colorbar(im, ax=ax, fraction=0.046)
    return fig


def _plot_curves(plt: Any, histories: dict[str, list[dict[str, Any]]], best: dict[str, int] | None = None) -> Any:
    """Loss and accuracy per epoch, train and val, one pair of lines per network (an ensemble's
    members are labelled by name); the epoch whose weights were saved (best val loss) ringed."""
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(9, 3.4))
    ringed = False
    for name, history in histories.items():
        ep = [h["epoch"] for h in history]
        tag = f" {name}" if len(histories) > 1 else ""
        for ax, key in ((a1, "loss"), (a2, "accuracy")):
            line, = ax.plot(ep, [h[key] for h in history], "o-", label=f"train{tag}")
            if history and f"val_{key}" in history[0]:
                ax.plot(ep, [h[f"val_{key}"] for h in history], "s--", color=line.get_color(), label=f"val{tag}")
                saved = [h for h in history if h["epoch"] == (best or {}).get(name)]
                if saved:
                    ax.plot([saved[0]["epoch"]], [saved[0][f"val_{key}"]], "o", ms=13, mfc="none",
                            color="black", label=None if ringed else "saved epoch")
        ringed = ringed or bool(best and best.get(name))
    for ax, key in ((a1, "loss"), (a2, "accuracy")):
        ax.xaxis.set_major_locator(plt.MaxNLocator(integer=True))
        ax.set_xlabel("epoch")
        ax.set_ylabel(key)
        ax.legend(fontsize="small")
    return fig


def _plot_comparison(plt: Any, models: dict[str, dict[str, Any]], boot: dict[str, Any] | None = None) -> Any:
    """Accuracy, weighted and macro F1 per model; with the bootstrap, their intervals as error bars."""
    names = list(models)
    keys = ["accuracy", "weighted_f1", "macro_f1"]
    fig, ax = plt.subplots(figsize=(6.5, 3.2))
    width = 0.8 / len(names)
    for j, n in enumerate(names):
        vals = [models[n][k] for k in keys]
        ci = boot["models"].get(n, {}) if boot else {}
        err = (np.maximum(np.array([[v - ci[k][0], ci[k][1] - v] for k, v in zip(keys, vals, strict=False)]).T, 0)
               if ci else None)
        ax.bar(np.arange(len(keys)) + j * width, vals, width, label=n, yerr=err, capsize=3)
    ax.set_xticks(np.arange(len(keys)) + 0.4 - width / 2, keys)
    ax.set_ylim(0, 1)
    ax.legend()
    if boot:
        ax.set_title(f"test split; error bars: {boot['level']:.0%} bootstrap intervals", fontsize="medium")
    return fig


def _histories(result: dict[str, Any]) -> tuple[dict[str, list[dict[str, Any]]], dict[str, int]]:
    """Network name -> its training history, and -> the epoch whose weights were saved (the best
    val loss; absent when unknown): the ensemble's members, or the one network."""
    ens = result.get("ensemble")
    if ens:
        names = {f"member {mb['member']} (seed {mb['seed']})": mb for mb in ens["members"]}
        return ({n: mb["history"] for n, mb in names.items()},
                {n: mb["best_epoch"] for n, mb in names.items() if mb.get("best_epoch")})
    if not result.get("history"):
        return {}, {}
    best = (result.get("measured_on") or {}).get("model_best_epoch")
    return {"lstm": result["history"]}, ({"lstm": best} if best else {})


def _bootstrap_section(boot: dict[str, Any], models: dict[str, dict[str, Any]]) -> tuple[str, str]:
    pct = f"{boot['level']:.0%}"

    def iv(v: list[float]) -> str:
        return f"[{v[0]:.4f}, {v[1]:.4f}]"

    keys = [k for k in BOOTSTRAP_METRICS + ERROR_METRICS if k in next(iter(boot["models"].values()))]
    rows = [[nm] + [x for k in keys for x in (models[nm][k], iv(ci[k]))] for nm, ci in boot["models"].items()]
    label = {"accuracy": "accuracy", "macro_f1": "macro F1", "weighted_f1": "weighted F1", "rmse": "RMSE",
             "mae": "MAE"}
    ref = boot["reference"]
    diffs = [[f"{ref} − {nm}", k, d["estimate"], iv(d["interval"]), d["share_not_ahead"],
              f"{ref} ahead" if d["ahead"] else f"not shown at {pct}"]
             for nm, dd in boot["differences"].items() for k, d in dd.items()]
    html = (H.table(["model"] + [x for k in keys for x in (label[k], f"{pct} interval")], rows)
            + H.table(["difference", "metric", "estimate", f"{pct} interval", "share of resamples not ahead",
                       "verdict"], diffs)
            + f"<p>{boot['reps']:,} resamples of the {boot['rows']:,} test reviews, both models of a difference "
              "on the same resample (paired); RMSE and MAE resample random groups of reviews (their errors "
              "are summed per group), and a lower error is ahead. The intervals cover which reviews were "
              "tested, not the randomness of training: another seed moves the LSTM's numbers too.</p>")
    return "Intervals (paired bootstrap over the test reviews)", html


def write_report(spark: SparkSession | None, out: str, result: dict[str, Any]) -> None:
    plt = H.plt()
    models = result["models"]
    with io.publish_dir(spark, out) as d:
        figs = []
        for name, m in models.items():
            figs.append(H.savefig(_plot_confusion(plt, m["confusion"], name), d, f"confusion_{name}.png"))
        histories, best = _histories(result)
        if histories:
            H.savefig(_plot_curves(plt, histories, best), d, "training_curves.png")
        boot = result.get("bootstrap")
        H.savefig(_plot_comparison(plt, models, boot), d, "comparison.png")
        with open(os.path.join(d, "metrics.json"), "w", encoding="utf-8") as fh:
            json.dump(result, fh, indent=2, default=str)
        summary = H.table(
            ["model", "accuracy", "weighted P", "weighted R", "weighted F1", "macro F1", "RMSE", "MAE"],
            [[n, m["accuracy"], m["weighted_precision"], m["weighted_recall"], m["weighted_f1"], m["macro_f1"],
              m["rmse"], m["mae"]] for n, m in models.items()])
        sections = [("Summary (test split)", summary + H.figure("comparison.png"))]
        if boot:
            sections.append(_bootstrap_section(boot, models))
        for name, m in models.items():
            t3 = H.table(["star", "precision", "recall", "F1", "support"],
                         [[c["star"], c["precision"], c["recall"], c["f1"], c["support"]] for c in m["per_class"]]
                         + [["weighted", m["weighted_precision"], m["weighted_recall"], m["weighted_f1"], m["n"]]])
            sections.append((f"{name}: per-class (Table 3 format)", t3 + H.figure(f"confusion_{name}.png")))
        if histories:
            hist = H.table(["network", "epoch", "loss", "accuracy", "val loss", "val accuracy", "seconds", "saved"],
                           [[name, h["epoch"], h["loss"], h["accuracy"], h.get("val_loss", ""),
                             h.get("val_accuracy", ""), h["seconds"], "yes" if best.get(name) == h["epoch"] else ""]
                            for name, history in histories.items() for h in history])
            title = "LSTM training" + (f" (ensemble of {len(histories)}: the mean of their star distributions)"
                                       if len(histories) > 1 else "")
            sections.append((title, hist + H.figure("training_curves.png")))
        if result.get("ensemble_members"):
            lstm = models["lstm"]
            rows = [[f"member {mm['member']} (seed {mm['seed']})"] + [mm[k] for k in SUMMARY]
                    for mm in result["ensemble_members"]]
            rows.append(["ensemble (mean of the members' distributions)"] + [lstm[k] for k in SUMMARY])
            sections.insert(1, ("LSTM ensemble: each member alone (test split)",
                                H.table(["network", "accuracy", "macro F1", "weighted F1", "RMSE", "MAE"], rows)))
        sections.append(("Measured on", "<pre>" + json.dumps(result["measured_on"], indent=2, default=str) + "</pre>"))
        with open(os.path.join(d, "index.html"), "w", encoding="utf-8") as fh:
            fh.write(H.page("reviewrec — star-rating model evaluation", sections,
                            subtitle=f"config {result['measured_on']['config_hash']}"))

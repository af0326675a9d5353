"""Causal figures render from the small result dicts (no Spark needed)."""
from __future__ import annotations

import os

from reviewrec.causal import plots


def _png(path: str) -> bool:
    with open(path, "rb") as fh:
        return fh.read(8) == b"\x89PNG\r\n\x1a\n" and os.path.getsize(path) > 1000


def test_every_causal_plot_writes_a_png(tmp_path):
    d = str(tmp_path)
    gm = [{"group": g, "time": t, "mean": 0.3 + 0.01 * t + 0.02 * g * (t >= 4), "n": 5}
          for g in (0, 1) for t in range(1, 7)]
    es = {"ref": -1, "coefficients": [{"rel_time": k, "coef": 0.01 * k, "ci_low": 0.01 * k - 0.01,
                                       "ci_high": 0.01 * k + 0.01} for k in range(-3, 3)]}
    bins = [{"x_mean": x / 10, "y_mean": x / 10 + (x >= 0)} for x in range(-10, 10)]
    fit = {"h": 0.5, "fit_left": [0.0, 1.0], "fit_right": [1.0, 1.0]}
    dens = {"bins": [{"mid": m / 10, "height": 1.0} for m in range(-10, 10)], "bin_width": 0.1, "theta": 0.0,
            "p_value": 1.0}
    ov = [{"bin": b, "left": b / 10, "width": 0.1, "treated": t, "count": 5 + b} for t in (0, 1) for b in range(10)]
    bal = [{"covariate": "a", "smd_before": 0.5, "smd_after": 0.05},
           {"covariate": "b", "smd_before": -0.2, "smd_after": 0.01}]
    curve = {"x": [0, 0.5, 1], "qini": [0, 0.8, 1], "uplift": [0, 0.7, 1], "qini_per_row": [0, 0.2, 0.1]}
    sub = [{"feature": "f", "bin": "(0, 1]", "uplift": 0.2, "ci_low": 0.1, "ci_high": 0.3}]
    names = [
        plots.group_means(gm, d, "gm.png", "group means", treat_time=4),
        plots.event_study(es, d, "es.png", "event study"),
        plots.rd_binned(bins, d, "rd.png", "rd", 0.0, fit),
        plots.density(dens, d, "dens.png", "density", 0.0),
        plots.overlap(ov, d, "ov.png", "overlap"),
        plots.love_plot(bal, d, "love.png", "balance"),
        plots.curves({"m": {"curve": curve}}, "qini", d, "cur.png", "curves"),
        plots.qini_per_row({"m": {"curve": curve}, "n": {"curve": curve}}, d, "qpr.png", "qini"),
        plots.quadrant_scatter([(0.1, -0.2), (-0.3, 0.4)], d, "quad.png", "a", "b"),
        plots.subgroup_forest(sub, d, "sub.png", "subgroups"),
    ]
    assert all(_png(os.path.join(d, n)) for n in names)

"""The calibration report: one self-contained HTML page with its plots embedded as SVG.

Plots by matplotlib (Agg, no display), curves by scikit-learn, the page by Jinja2. On the
validation rows, side by side: ROC curves and lift for the model, the scorecard and the naive
activity count; the model's reliability curve (the baselines are rankings, not probabilities);
each column's effect as the ROC AUC lost when it is shuffled.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")

import numpy as np
from jinja2 import Environment, PackageLoader, select_autoescape
from matplotlib import pyplot as plt
from matplotlib.figure import Figure
from numpy.typing import NDArray
from sklearn.calibration import calibration_curve
from sklearn.metrics import roc_curve

from services.scoring.risk.calibrate import Calibration

LABELS = {
    "model": "fitted model",
    "scorecard": "scorecard (100 - score)",
    "naive_activity_28d": "naive 28-day count",
}


def _svg(figure: Figure) -> str:
    out = io.StringIO()
    figure.savefig(out, format="svg", bbox_inches="tight")
    plt.close(figure)
    text = out.getvalue()
    return text[text.index("<svg") :]  # inline: drop the XML prologue


def roc_plot(y: NDArray[np.float64], risks: dict[str, NDArray[np.float64]]) -> str:
    figure, axes = plt.subplots(figsize=(5, 4.5))
    for name, risk in risks.items():
        fpr, tpr, _ = roc_curve(y, risk)
        axes.plot(fpr, tpr, label=LABELS.get(name, name))
    axes.plot([0, 1], [0, 1], linestyle=":", color="grey", label="coin flip")
    axes.set(xlabel="false positive rate", ylabel="true positive rate", title="ROC")
    axes.legend(loc="lower right", fontsize="small")
    return _svg(figure)


def reliability_plot(y: NDArray[np.float64], probability: NDArray[np.float64]) -> str:
    figure, axes = plt.subplots(figsize=(5, 4.5))
    observed, predicted = calibration_curve(y, probability, n_bins=10, strategy="quantile")
    axes.plot(predicted, observed, marker="o", label="fitted model")
    top = float(max(predicted.max(initial=0), observed.max(initial=0), 0.05))
    axes.plot([0, top], [0, top], linestyle=":", color="grey", label="perfectly calibrated")
    axes.set(xlabel="predicted churn probability", ylabel="observed churn rate",
             title="Reliability (deciles of prediction)")
    axes.legend(loc="upper left", fontsize="small")
    return _svg(figure)


def lift_table(y: NDArray[np.float64], risk: NDArray[np.float64], bins: int = 10) -> list[float]:
    """The churn rate of each tenth of the rows, riskiest first, over the base rate."""
    order = np.argsort(-risk, kind="stable")
    base = float(y.mean()) or 1.0
    return [float(y[part].mean()) / base if len(part) else 0.0 for part in np.array_split(order, bins)]


def lift_plot(y: NDArray[np.float64], risks: dict[str, NDArray[np.float64]]) -> str:
    figure, axes = plt.subplots(figsize=(6, 4.5))
    width = 0.8 / len(risks)
    for k, (name, risk) in enumerate(risks.items()):
        lift = lift_table(y, risk)
        offset = (k - (len(risks) - 1) / 2) * width
        axes.bar(np.arange(1, 11) + offset, lift, width, label=LABELS.get(name, name))
    axes.axhline(1.0, linestyle=":", color="grey")
    axes.set(xlabel="decile of risk (1 = riskiest tenth)", ylabel="churn rate / base rate", title="Lift",
             xticks=range(1, 11))
    axes.legend(fontsize="small")
    return _svg(figure)


def effects_plot(effects: list[tuple[str, float, float]], top: int = 15) -> str:
    shown = effects[:top][::-1]
    figure, axes = plt.subplots(figsize=(6, 0.3 * len(shown) + 1.2))
    axes.barh([c for c, _, _ in shown], [m for _, m, _ in shown], xerr=[s for _, _, s in shown])
    axes.set(xlabel="ROC AUC lost when the column is shuffled", title="Each feature's effect (model)")
    axes.tick_params(axis="y", labelsize="small")
    return _svg(figure)


def write(calibration: Calibration, directory: Path) -> Path:
    """Write `index.html` (and `summary.json`'s twin is the caller's) into `directory`."""
    y = np.asarray([o.label for o in calibration.validation], dtype=float)
    risks = calibration.risks
    environment = Environment(
        loader=PackageLoader("services.scoring.risk", "templates"), autoescape=select_autoescape()
    )
    summary: dict[str, Any] = calibration.summary
    page = environment.get_template("calibration_report.html").render(
        summary=summary,
        measures=[
            (f"{LABELS['model']} ({summary['chosen']})", summary["measured"][summary["chosen"]]),
            (LABELS["scorecard"], summary["measured"]["scorecard"]),
            (LABELS["naive_activity_28d"], summary["measured"]["naive_activity_28d"]),
        ],
        roc=roc_plot(y, risks),
        reliability=reliability_plot(y, risks["model"]),
        lift=lift_plot(y, risks),
        effects=effects_plot(calibration.effects),
    )
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "index.html"
    path.write_text(page)
    return path

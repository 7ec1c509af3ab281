"""Report pieces every parameter sweep's section shares (``backtest``, ``portfolio-backtest``).

A combination's label, the Sharpe ratio over two parameters, the top combinations' growth from
``equity/``, and the validation blocks (issue 14): PBO with the histogram of the CSCV splits'
logits (the manifest's ``logit_histogram`` bins), the walk-forward folds, and the stitched
out-of-sample equity against the in-sample best over the same dates.
"""

from __future__ import annotations

from typing import Final

import numpy as np
import numpy.typing as npt
import pandas as pd

from analytics.report import html, plots
from analytics.run.committed import CommittedRun as RunView

FOLD_FORMATS: Final = {
    "train_sharpe": html.fmt_ratio,
    "test_sharpe": html.fmt_ratio,
    "test_total_return": html.fmt_pct,
    "rank_correlation": html.fmt_ratio,
}


def parameter_label(value: object) -> str:
    number = float(str(value))
    return f"{number:g}"


def combination_label(row: pd.Series, params: list[str]) -> str:
    return " ".join(f"{p}={parameter_label(row[p])}" for p in params)


def sharpe_grid(summary: pd.DataFrame, x: str, y: str) -> pd.DataFrame:
    """Best portfolio Sharpe ratio for each (y, x) pair of parameter values (rows: y)."""
    grid = summary.pivot_table(index=y, columns=x, values="sharpe", aggfunc="max", dropna=False)
    return grid.sort_index().sort_index(axis=1)


def top_growth(equity: pd.DataFrame) -> dict[int, pd.Series]:
    """Each ranked combination's cumulative return (``equity - 1``) by date."""
    curves = {}
    for rank, group in equity.groupby("rank", sort=True):
        curve = group.sort_values("date")
        dates = pd.DatetimeIndex(pd.to_datetime(curve["date"]))
        curves[int(str(rank))] = pd.Series(
            curve["equity"].to_numpy(dtype=np.float64) - 1.0, index=dates
        )
    return curves


def logit_values(histogram: dict[str, list[float]]) -> npt.NDArray[np.float64]:
    """The histogram's bin centres, each repeated by its count: drawn with as many equal-width
    bins, each centre falls in a bin of its own, so the bars are the histogram's counts."""
    edges = np.asarray(histogram["edges"], dtype=np.float64)
    counts = np.asarray(histogram["counts"], dtype=np.int64)
    return np.repeat((edges[:-1] + edges[1:]) / 2.0, counts)


def oos_chart(view: RunView, params: list[str]) -> str:
    oos = view.table("oos_equity").to_pandas().sort_values("date")
    dates = pd.DatetimeIndex(pd.to_datetime(oos["date"]))
    growth = pd.Series(oos["equity"].to_numpy(dtype=np.float64) - 1.0, index=dates)
    lines = [plots.Line("walk-forward, stitched out-of-sample", growth, plots.PALETTE[0])]
    if view.has_table("equity"):
        curves = top_growth(view.table("equity").to_pandas())
        if curves and len(dates):
            best = curves[min(curves)]
            best = best[best.index >= dates[0]]
            if len(best):
                wealth = (1.0 + best) / (1.0 + best.iloc[0])
                top = view.table("top").to_pandas().sort_values("rank")
                name = "in-sample best"
                if len(top):
                    name += f" #1 {combination_label(top.iloc[0], params)}"
                lines.append(plots.Line(name, wealth - 1.0, plots.BLACK, dashed=True))
    return plots.cumulative_chart(
        lines, title="Walk-forward out-of-sample equity against the in-sample best"
    )


def validation_blocks(view: RunView, params: list[str]) -> list[str]:
    """The validation blocks of a sweep's section: PBO and its logits, the walk-forward folds
    and their stitched equity against the in-sample best (none without ``validation/``)."""
    if not view.has_table("validation"):
        return []
    row = view.table("validation").to_pandas().iloc[0]
    cards = [
        ("PBO (probability of backtest overfitting)", html.fmt_ratio(row["pbo"])),
        ("CSCV splits", f"{int(row['n_splits']):,}"),
        ("median logit", html.fmt_ratio(row["median_logit"])),
        ("OOS on IS slope", html.fmt_ratio(row["oos_is_slope"])),
        ("P(OOS loss)", html.fmt_pct(row["prob_oos_loss"])),
    ]
    if "wf_oos_sharpe" in row.index:
        cards.append(("walk-forward OOS Sharpe", html.fmt_ratio(row["wf_oos_sharpe"])))
        cards.append(("mean training Sharpe", html.fmt_ratio(row["wf_mean_train_sharpe"])))
    blocks = ["<h3>Is the best combination luck?</h3>", html.cards(cards)]
    figures = []
    histogram = view.summary.get("logit_histogram")
    if histogram and histogram.get("counts"):
        figures.append(
            html.figure(
                plots.histogram(
                    logit_values(histogram),
                    title="CSCV: logit of the in-sample best's out-of-sample rank",
                    x_label="logit λ (λ ≤ 0: at or below the out-of-sample median)",
                    y_label="splits",
                    bins=len(histogram["counts"]),
                    markers=[plots.Marker(0.0, "overfit at or below", plots.PALETTE[1])],
                ),
                f"PBO = the share of the {int(row['n_splits']):,} splits with λ ≤ 0.",
            )
        )
    if view.has_table("oos_equity"):
        figures.append(html.figure(oos_chart(view, params)))
    blocks.append(f'<div class="charts">{"".join(figures)}</div>')
    if view.has_table("walk_forward"):
        folds = view.table("walk_forward").to_pandas().sort_values("fold")
        head = ["fold", "train_start", "train_end", "test_start", "test_end", "combination"]
        columns = [*head, *params, *FOLD_FORMATS]
        formats = [
            html.fmt_int,
            *([None] * 4),
            html.fmt_int,
            *([None] * len(params)),
            *FOLD_FORMATS.values(),
        ]
        blocks.append("<h3>Walk-forward folds</h3>")
        blocks.append(html.table(columns, (list(r) for r in folds[columns].values), formats))
    return blocks

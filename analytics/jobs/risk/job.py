"""The ``risk`` job: VaR and expected shortfall of each portfolio on an as-of date.

Positions on the as-of date are valued at that day's closes; the P&L scenarios are the last
``--lookback-days`` daily returns of the holdings. The files are read in parallel by the cluster;
the portfolio algebra (a few hundred dates by a few hundred symbols) is small and runs on the
driver.
"""

from __future__ import annotations

import datetime as dt
import logging
import math
from typing import Any

import numpy as np
import pandas as pd
from distributed import Client

from analytics.data.checks import check_unique
from analytics.data.datasets import Selection, dataset, read_dataset, skipped_rows, with_bad_rows
from analytics.errors import InputError
from analytics.jobs.contract import JobContext, JobResult
from analytics.jobs.risk import kernel as rk
from analytics.jobs.risk.options import Options
from analytics.run.display import wait_with_progress
from analytics.run.folder import write_part

log = logging.getLogger(__name__)

VAR_TABLE = "var"
CONTRIBUTIONS_TABLE = "contributions"
#: Each portfolio's one-day P&L under each scenario (what the report's histogram draws).
SCENARIOS_TABLE = "scenarios"
#: Calendar days of history read per trading day of lookback, with a margin for holidays.
CALENDAR_DAYS_PER_SESSION = 1.6


def _compute(client: Client, frame: Any, label: str) -> pd.DataFrame:
    future = client.compute(frame)
    wait_with_progress([future], label)
    result: pd.DataFrame = future.result()
    return result


def portfolio_risk(
    portfolio: str,
    as_of: dt.date,
    holdings: pd.DataFrame,
    scenarios: pd.DataFrame,
    confidences: tuple[float, ...],
    horizons: tuple[int, ...],
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The ``var`` rows and ``contributions`` rows of one portfolio.

    ``holdings`` has symbol, quantity and close (as of); ``scenarios`` one column of returns per
    held symbol.
    """
    symbols = holdings["symbol"].tolist()
    exposures = (holdings["quantity"] * holdings["close"]).to_numpy(dtype=np.float64)
    returns = scenarios[symbols].to_numpy(dtype=np.float64)
    pnl = returns @ exposures
    value = float(exposures.sum())
    cov = rk.covariance(returns)
    var_rows, contrib_rows = [], []
    for confidence in confidences:
        hist = rk.historical(pnl, confidence)
        para, components = rk.parametric(exposures, cov, confidence)
        for horizon in horizons:
            scale = math.sqrt(horizon)
            for method, risk in (("historical", hist), ("parametric", para)):
                var, es = risk.var * scale, risk.es * scale
                var_rows.append(
                    {
                        "portfolio": portfolio,
                        "as_of": as_of,
                        "method": method,
                        "confidence": confidence,
                        "horizon_days": horizon,
                        "value": value,
                        "var": var,
                        "es": es,
                        "var_pct": var / value if value else math.nan,
                        "es_pct": es / value if value else math.nan,
                    }
                )
            total = para.var * scale
            for i, symbol in enumerate(symbols):
                component = float(components[i]) * scale
                contrib_rows.append(
                    {
                        "portfolio": portfolio,
                        "as_of": as_of,
                        "symbol": symbol,
                        "confidence": confidence,
                        "horizon_days": horizon,
                        "quantity": float(holdings["quantity"].iloc[i]),
                        "close": float(holdings["close"].iloc[i]),
                        "exposure": float(exposures[i]),
                        "component_var": component,
                        "share": component / total if total else math.nan,
                    }
                )
    return var_rows, contrib_rows


def scenario_pnl(portfolio: str, holdings: pd.DataFrame, scenarios: pd.DataFrame) -> pd.DataFrame:
    """The ``scenarios`` rows of one portfolio: ``pnl_s = sum_i w_i r_i,s`` for each date ``s``
    (one day, unscaled: the P&L that the historical VaR is the quantile of)."""
    exposures = (holdings["quantity"] * holdings["close"]).to_numpy(dtype=np.float64)
    pnl = scenarios[holdings["symbol"].tolist()].to_numpy(dtype=np.float64) @ exposures
    return pd.DataFrame(
        {
            "portfolio": portfolio,
            "date": [d.date() for d in scenarios.index],
            "pnl": pnl,
        }
    )


def run(ctx: JobContext) -> JobResult:
    client, settings = ctx.client, ctx.settings
    args: Options = ctx.options
    as_of: dt.date = args.as_of
    if settings.start or settings.end:
        log.warning("risk ignores --start/--end: its window is --as-of and --lookback-days")
    on_bad_rows = settings.on_bad_rows
    pos_sel = with_bad_rows(Selection(as_of, as_of, settings.symbols), on_bad_rows)
    pos_frame, pos_files = read_dataset(settings.input_url, "positions", pos_sel)
    positions = _compute(client, pos_frame, "risk: positions")
    positions = positions[positions["quantity"] != 0]
    if positions.empty:
        raise InputError(
            f"no positions on the as-of date {as_of}", dataset="positions", column="date"
        )
    check_unique(positions, dataset("positions"), "positions on " + str(as_of))
    held = tuple(sorted(positions["symbol"].astype(str).unique()))

    window = int(args.lookback_days * CALENDAR_DAYS_PER_SESSION) + 10
    sel = with_bad_rows(Selection(as_of - dt.timedelta(days=window), as_of, held), on_bad_rows)
    price_frame, price_files = read_dataset(
        settings.input_url, "prices", sel, columns=["symbol", "date", "close"]
    )
    prices = _compute(client, price_frame, "risk: prices")
    check_unique(prices, dataset("prices"), "the selected prices")
    closes = prices.pivot(index="date", columns="symbol", values="close").sort_index()
    as_of_ts = pd.Timestamp(as_of)
    if closes.empty or closes.index[-1] != as_of_ts:
        raise InputError(
            f"no prices on the as-of date {as_of} (is it a trading day?)",
            dataset="prices",
            column="date",
        )
    last = pd.Series(closes.loc[as_of_ts])
    unknown = sorted(set(held) - set(last.dropna().index.astype(str)))
    if unknown:
        raise InputError(
            f"positions on {as_of} hold symbols with no price that day: {unknown[:20]}",
            dataset="positions",
            column="symbol",
        )
    returns = pd.DataFrame(
        rk.scenario_returns(closes.to_numpy(dtype=np.float64)),
        index=closes.index[1:],
        columns=closes.columns,
    ).iloc[-args.lookback_days :]
    if len(returns) < 2:
        raise InputError(f"fewer than 2 daily returns before {as_of}", dataset="prices")
    if len(returns) < args.lookback_days:
        log.warning(
            "only %d daily returns before %s (asked %d)",
            len(returns),
            as_of,
            args.lookback_days,
        )

    var_rows: list[dict[str, Any]] = []
    contrib_rows: list[dict[str, Any]] = []
    pnl_parts: list[pd.DataFrame] = []
    for portfolio, group in positions.groupby("portfolio", sort=True, observed=True):
        holdings = group.groupby("symbol", observed=True)["quantity"].sum().reset_index()
        holdings["close"] = last[holdings["symbol"].astype(str)].to_numpy()
        holdings["symbol"] = holdings["symbol"].astype(str)
        v, c = portfolio_risk(
            str(portfolio), as_of, holdings, returns, args.confidence, args.horizon_days
        )
        var_rows += v
        contrib_rows += c
        pnl_parts.append(scenario_pnl(str(portfolio), holdings, returns))
    parts = [
        write_part(settings.output_url, VAR_TABLE, 0, pd.DataFrame(var_rows)),
        write_part(settings.output_url, CONTRIBUTIONS_TABLE, 0, pd.DataFrame(contrib_rows)),
        write_part(settings.output_url, SCENARIOS_TABLE, 0, pd.concat(pnl_parts)),
    ]
    return JobResult(
        parts=parts,
        inputs={"positions": pos_files, "prices": price_files},
        summary={
            "as_of": as_of,
            "portfolios": len(var_rows)
            // max(1, 2 * len(args.confidence) * len(args.horizon_days)),
            "scenarios": len(returns),
            "scenario_start": returns.index[0].date(),
            "scenario_end": returns.index[-1].date(),
            "skipped_rows": skipped_rows(client, pos_sel, sel),
        },
    )

"""The ``risk`` job: VaR and expected shortfall of each portfolio on an as-of date.

Positions on the as-of date are valued at that day's closes; the P&L scenarios are the last
``--lookback-days`` daily returns of the holdings. The files are read in parallel by the cluster;
the portfolio algebra of today's book (a few hundred dates by a few hundred symbols) is small and
runs on the driver; the VaR backtest (:mod:`analytics.jobs.risk.backtest`) runs one task per
portfolio and chunk of days on the cluster.

A scenario day on which a holding has no return (a halt, or before its listing) counts as a 0
return for it; ``coverage/`` says how many of the lookback's days each holding really has, and
holdings under ``--min-coverage`` are named in the manifest summary.
"""

from __future__ import annotations

import datetime as dt
import logging
import math
from typing import Any, Final

import numpy as np
import pandas as pd
from distributed import Client

from analytics.data.checks import check_unique
from analytics.data.datasets import Selection, dataset, skipped_rows, with_bad_rows
from analytics.data.reads import read_dataset
from analytics.errors import InputError
from analytics.jobs.contract import JobContext, JobResult
from analytics.jobs.risk import backtest as bt
from analytics.jobs.risk import kernel as rk
from analytics.jobs.risk.options import Options
from analytics.jobs.risk.stress import stressed_returns
from analytics.run.folder import write_part
from analytics.run.progress import Phase, Progress
from analytics.stats import var as sv

log = logging.getLogger(__name__)

VAR_TABLE = "var"
CONTRIBUTIONS_TABLE = "contributions"
#: Each portfolio's one-day P&L under each scenario (what the report's histogram draws).
SCENARIOS_TABLE = "scenarios"
#: Per portfolio and holding, the share of the lookback's scenario days with a return.
COVERAGE_TABLE = "coverage"
#: Calendar days of history read per trading day of lookback, with a margin for holidays.
CALENDAR_DAYS_PER_SESSION = 1.6
#: Calendar days searched back for a portfolio's latest positions before a backtest day.
POSITIONS_MARGIN_DAYS: Final = 31


def _compute(client: Client, frame: Any, progress: Progress, files: int) -> pd.DataFrame:
    """``frame`` read on the cluster: a reading phase of ``files`` files."""
    future = client.compute(frame)
    progress.wait([future], Phase("reading", "files", futures=[future], total=files))
    result: pd.DataFrame = future.result()
    return result


def portfolio_risk(
    portfolio: str,
    as_of: dt.date,
    holdings: pd.DataFrame,
    scenarios: pd.DataFrame,
    confidences: tuple[float, ...],
    horizons: tuple[int, ...],
    *,
    methods: tuple[str, ...] = ("historical", "parametric"),
    lam: float = sv.RISKMETRICS_LAMBDA,
    stressed: pd.DataFrame | None = None,
    observed: pd.DataFrame | None = None,
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The ``var`` rows and ``contributions`` rows of one portfolio.

    ``holdings`` has symbol, quantity and close (as of); ``scenarios`` (and ``stressed``, the
    returns of the stress window, whose rows are method ``stressed``) one column of returns per
    held symbol. ``var_pct`` and ``es_pct`` are over the gross exposure ``sum |w_i|``; ``net`` is
    ``sum w_i``. An empty book has 0 VaR and no contributions.
    """
    symbols = holdings["symbol"].tolist()
    exposures = (holdings["quantity"] * holdings["close"]).to_numpy(dtype=np.float64)
    returns = scenarios[symbols].to_numpy(dtype=np.float64)
    pnl = returns @ exposures
    net, gross = float(exposures.sum()), float(np.abs(exposures).sum())
    seen = observed[symbols].to_numpy(dtype=bool) if observed is not None else None
    risks = rk.model_risks(methods, returns, exposures, confidences, lam=lam, observed=seen)
    if stressed is not None:
        stress = rk.model_risks(
            ("historical",), stressed[symbols].to_numpy(np.float64), exposures, confidences, lam=lam
        )
        risks |= {("stressed", c): r for (_, c), r in stress.items()}
    cov = rk.covariance(returns) if symbols else np.zeros((0, 0))
    var_rows, contrib_rows = [], []
    for confidence in confidences:
        hist = rk.historical(pnl, confidence) if symbols else rk.TailRisk(0.0, 0.0)
        para, components = rk.parametric(exposures, cov, confidence) if symbols else (hist, cov)
        tail = sv.component_es(returns, exposures, hist.var)
        for horizon in horizons:
            scale = math.sqrt(horizon)
            for (method, c), risk in risks.items():
                if c != confidence:
                    continue
                var, es = risk.var * scale, risk.es * scale
                var_rows.append(
                    {
                        "portfolio": portfolio,
                        "as_of": as_of,
                        "method": method,
                        "confidence": confidence,
                        "horizon_days": horizon,
                        "gross": gross,
                        "net": net,
                        "var": var,
                        "es": es,
                        "var_pct": var / gross if gross else math.nan,
                        "es_pct": es / gross if gross else math.nan,
                    }
                )
            total, total_es = para.var * scale, hist.es * scale
            for i, symbol in enumerate(symbols):
                component = float(components[i]) * scale
                component_es = float(tail[i]) * scale
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
                        "component_es_hist": component_es,
                        "share_es": component_es / total_es if total_es else math.nan,
                    }
                )
    return var_rows, contrib_rows


def _names(files: Any) -> str:
    """The files a cross-file duplicate may come from, for its message."""
    urls = [f.url for f in files]
    return ", ".join(urls[:4]) + (f" and {len(urls) - 4} more" if len(urls) > 4 else "")


def coverage_rows(
    portfolio: str, symbols: list[str], has_return: pd.DataFrame, min_coverage: float
) -> list[dict[str, Any]]:
    """The ``coverage`` rows of one portfolio: per holding, the share of the scenario days
    (rows of ``has_return``) on which it has a return, flagged under ``min_coverage``."""
    shares = has_return[symbols].mean(axis=0) if len(has_return) else pd.Series(0.0, symbols)
    return [
        {
            "portfolio": portfolio,
            "symbol": symbol,
            "coverage": float(shares[symbol]),
            "flagged": bool(shares[symbol] < min_coverage),
        }
        for symbol in symbols
    ]


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
    methods, lam, backtest_days = args.methods, args.ewma_lambda, args.backtest_days
    # The options checked --lookback-days against the methods; the data may still be shorter.
    min_days = max(rk.MIN_DAYS[m] for m in methods)
    on_bad_rows = settings.on_bad_rows
    # The backtest needs the positions of every backtest day's previous session.
    pos_start = as_of - dt.timedelta(
        days=int(backtest_days * CALENDAR_DAYS_PER_SESSION) + POSITIONS_MARGIN_DAYS
        if backtest_days
        else 0
    )
    pos_sel = with_bad_rows(Selection(pos_start, as_of, settings.symbols), on_bad_rows)
    threads = sum(client.nthreads().values()) or 1
    pos_frame, pos_files = read_dataset(settings.input_url, "positions", pos_sel, threads)
    history = _compute(client, pos_frame, ctx.progress, len(pos_files))
    all_positions = history[pd.to_datetime(history["date"]) == pd.Timestamp(as_of)]
    if all_positions.empty:
        raise InputError(
            f"no positions on the as-of date {as_of}", dataset="positions", column="date"
        )
    # Every snapshot read (the VaR backtest uses each of them), not only the as-of date's.
    check_unique(history, dataset("positions"), _names(pos_files))
    positions = all_positions[all_positions["quantity"] != 0]
    held = tuple(sorted(history.loc[history["quantity"] != 0, "symbol"].astype(str).unique()))

    sessions = args.lookback_days + backtest_days + 1
    window = int(sessions * CALENDAR_DAYS_PER_SESSION) + 10
    sel = with_bad_rows(Selection(as_of - dt.timedelta(days=window), as_of, held), on_bad_rows)
    price_frame, price_files = read_dataset(
        settings.input_url, "prices", sel, threads, columns=["symbol", "date", "close"]
    )
    prices = _compute(client, price_frame, ctx.progress, len(price_files))
    check_unique(prices, dataset("prices"), _names(price_files))
    closes = prices.pivot(index="date", columns="symbol", values="close").sort_index()
    closes.index = pd.DatetimeIndex(closes.index)
    closes.columns = closes.columns.astype(str)
    as_of_ts = pd.Timestamp(as_of)
    if closes.empty or closes.index[-1] != as_of_ts:
        raise InputError(
            f"no prices on the as-of date {as_of} (is it a trading day?)",
            dataset="prices",
            column="date",
        )
    last = pd.Series(closes.loc[as_of_ts])
    today = set(positions["symbol"].astype(str))
    unknown = sorted(today - set(last.dropna().index.astype(str)))
    if unknown:
        raise InputError(
            f"positions on {as_of} hold symbols with no price that day: {unknown[:20]}",
            dataset="positions",
            column="symbol",
        )
    closes_np = closes.to_numpy(dtype=np.float64)
    all_returns = rk.scenario_returns(closes_np)
    returns = pd.DataFrame(all_returns, index=closes.index[1:], columns=closes.columns).iloc[
        -args.lookback_days :
    ]
    observed = pd.DataFrame(
        rk.has_return(closes_np), index=closes.index[1:], columns=closes.columns
    ).iloc[-args.lookback_days :]
    if len(returns) < min_days:
        raise InputError(
            f"{len(returns)} daily returns before {as_of}: --methods {','.join(methods)} "
            f"need at least {min_days}",
            dataset="prices",
        )
    if len(returns) < args.lookback_days:
        log.warning(
            "only %d daily returns before %s (asked %d)",
            len(returns),
            as_of,
            args.lookback_days,
        )
    stress_window, stressed, stress_files, stress_thin = stressed_returns(
        client, settings, args, sorted(today), on_bad_rows, ctx.progress
    )

    var_rows: list[dict[str, Any]] = []
    contrib_rows: list[dict[str, Any]] = []
    cover_rows: list[dict[str, Any]] = []
    pnl_parts: list[pd.DataFrame] = []
    names = sorted(all_positions["portfolio"].astype(str).unique())
    notes: list[str] = []
    ctx.progress.start("computing", len(names), "portfolios")
    for portfolio in names:
        group = positions[positions["portfolio"].astype(str) == portfolio]
        holdings = group.groupby("symbol", observed=True)["quantity"].sum().reset_index()
        holdings["symbol"] = holdings["symbol"].astype(str)
        holdings = holdings[holdings["quantity"] != 0].reset_index(drop=True)
        holdings["close"] = last[holdings["symbol"]].to_numpy()
        v, c = portfolio_risk(
            portfolio,
            as_of,
            holdings,
            returns,
            args.confidence,
            args.horizon_days,
            methods=methods,
            lam=lam,
            stressed=stressed,
            observed=observed,
        )
        var_rows += v
        contrib_rows += c
        if holdings.empty:  # every quantity 0: its rows say 0, and a note says why
            notes.append(f"portfolio {portfolio!r} holds only zero quantities on {as_of}")
            log.warning("%s: its VaR and ES are 0", notes[-1])
        cover_rows += coverage_rows(
            portfolio, holdings["symbol"].tolist(), observed, args.min_coverage
        )
        pnl_parts.append(scenario_pnl(portfolio, holdings, returns))
        ctx.progress.advance()
    flagged = [f"{r['portfolio']}:{r['symbol']}" for r in cover_rows if r["flagged"]]
    if flagged:
        log.warning(
            "%d holdings have a return on fewer than %g of the %d scenario days (their gaps "
            "count as 0 returns): %s",
            len(flagged),
            args.min_coverage,
            len(returns),
            ", ".join(flagged[:20]),
        )
    # A backtest day needs a number from every model: FHS needs one day past its seed.
    backtest_min = max(min_days, sv.SEED_DAYS + 1 if "fhs" in methods else 0)
    exceptions = _backtest(
        ctx, history, closes, all_returns, args, methods, lam, backtest_days, backtest_min
    )
    ctx.progress.start("writing", 6, "tables")
    parts = [
        write_part(settings.destination, VAR_TABLE, 0, pd.DataFrame(var_rows)),
        write_part(settings.destination, CONTRIBUTIONS_TABLE, 0, pd.DataFrame(contrib_rows)),
        write_part(settings.destination, SCENARIOS_TABLE, 0, pd.concat(pnl_parts)),
        write_part(
            settings.destination,
            COVERAGE_TABLE,
            0,
            pd.DataFrame(cover_rows, columns=["portfolio", "symbol", "coverage", "flagged"]),
        ),
        write_part(settings.destination, bt.BACKTEST_TABLE, 0, bt.summarize(exceptions)),
        write_part(settings.destination, bt.EXCEPTIONS_TABLE, 0, exceptions),
    ]
    inputs = {"positions": pos_files, "prices": price_files + stress_files}
    return JobResult(
        parts=parts,
        inputs=inputs,
        summary={
            "as_of": as_of,
            "portfolios": len(names),
            "methods": list(methods),
            "scenarios": len(returns),
            "scenario_start": returns.index[0].date(),
            "scenario_end": returns.index[-1].date(),
            "stress_window": [str(d) for d in stress_window] if stress_window else None,
            "stress_scenarios": len(stressed) if stressed is not None else 0,
            "stress_thin_coverage": stress_thin,
            "backtest_days": int(exceptions["date"].nunique()),
            "coverage_flagged": flagged,
            "skipped_rows": skipped_rows(client, pos_sel, sel),
            "notes": notes,
        },
    )


def _backtest(
    ctx: JobContext,
    history: pd.DataFrame,
    closes: pd.DataFrame,
    returns: Any,
    args: Options,
    methods: tuple[str, ...],
    lam: float,
    days: int,
    min_days: int,
) -> pd.DataFrame:
    """The ``var_exceptions`` rows: one Dask task per portfolio and chunk of days."""
    client = ctx.client
    empty = pd.DataFrame({c: [] for c in bt.EXCEPTION_COLUMNS})
    if not days:
        return empty
    chunks = bt.plan_chunks(
        history,
        closes,
        returns,
        days=days,
        lookback=args.lookback_days,
        min_days=min_days,
        observed=rk.has_return(closes.to_numpy(dtype=np.float64)),
    )
    futures = client.map(
        bt.backtest_chunk,
        chunks,
        lookback=args.lookback_days,
        methods=methods,
        confidences=args.confidence,
        lam=lam,
        pure=False,
    )
    # The VaR backtest: each task covers one portfolio's chunk of days.
    days_of = {f.key: len(c.dates) for f, c in zip(futures, chunks, strict=True)}
    ctx.progress.wait(futures, Phase("backtesting", "portfolio-days", weights=days_of))
    frames = [f for f in client.gather(futures) if len(f)]
    exceptions = pd.concat(frames, ignore_index=True) if frames else empty
    n_days = exceptions["date"].nunique()
    if n_days < days:
        log.warning(
            "VaR backtest over %d sessions (asked %d): the data has %d sessions with %d "
            "returns before them",
            n_days,
            days,
            n_days,
            min_days,
        )
    return exceptions

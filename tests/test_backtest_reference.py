"""An independent backtester for the tests: plain Python loops over one symbol's days.

It shares nothing with :mod:`analytics.jobs.backtest` but the definitions written in
docs/jobs/backtest.md: the strategies' rules, the execution model and the statistics'
conventions (metrics from :mod:`analytics.stats.metrics`, as market-performance computes them). The
other backtest tests import it; the tests at the bottom check it against a path worked out by
hand.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pytest

from analytics.stats import metrics

PPY = 252


def _mean(values: Sequence[float]) -> float:
    return sum(values) / len(values)


def targets(
    strategy: str, close: Sequence[float], params: Mapping[str, float], long_short: bool
) -> list[int]:
    """The target position decided at each of the symbol's closes."""
    n = len(close)
    out = [0] * n
    pos = 0
    for i in range(n):
        if strategy == "sma-cross":
            fast, slow = int(params["fast"]), int(params["slow"])
            pos = 0
            if i >= slow - 1:
                f = _mean(close[i - fast + 1 : i + 1])
                s = _mean(close[i - slow + 1 : i + 1])
                pos = 1 if f > s else (-1 if long_short and f < s else 0)
        elif strategy == "momentum":
            look, every, th = int(params["lookback"]), int(params["rebalance"]), params["threshold"]
            pos = 0
            if i >= look:
                e = look + (i - look) // every * every
                ret = close[e] / close[e - look] - 1.0
                pos = 1 if ret > th else (-1 if long_short and ret < -th else 0)
        elif strategy == "mean-reversion":
            w, entry, exit_ = int(params["window"]), params["entry_z"], params["exit_z"]
            if i >= w - 1:
                win = np.asarray(close[i - w + 1 : i + 1])
                sd = float(np.std(win))
                if sd > 0:
                    z = (close[i] - float(np.mean(win))) / sd
                    if z < -entry:
                        pos = 1
                    elif long_short and z > entry:
                        pos = -1
                    elif (pos == 1 and z >= -exit_) or (pos == -1 and z <= exit_):
                        pos = 0
        elif strategy == "breakout":
            w = int(params["window"])
            if i >= w:
                high, low = max(close[i - w : i]), min(close[i - w : i])
                if close[i] > high:
                    pos = 1
                elif close[i] < low:
                    pos = -1 if long_short else 0
        else:
            raise ValueError(strategy)
        out[i] = pos
    return out


@dataclass
class Run:
    returns: list[float]
    equity: list[float]
    held: list[int]
    n_trades: int
    n_closed: int
    n_wins: int
    traded: float


def execute(
    open_: Sequence[float],
    close: Sequence[float],
    target: Sequence[int],
    *,
    fill: str,
    fee: float,
    slippage: float,
) -> Run:
    """The execution model of docs/jobs/backtest.md, one day at a time, with cash and shares."""
    cash, shares, pos = 1.0, 0.0, 0
    entry_fill = math.nan
    previous = 1.0
    run = Run([], [], [], 0, 0, 0, 0.0)
    for i in range(len(close)):
        if fill == "close":
            want, price = target[i], close[i]
        else:
            want, price = (target[i - 1] if i > 0 else 0), open_[i]
        if want != pos:
            if pos != 0:  # close: a sale, or a buy to cover a short
                fill_price = price * (1 - slippage) if pos > 0 else price * (1 + slippage)
                value = abs(shares) * fill_price
                cash += shares * fill_price - fee * value
                run.traded += value
                run.n_closed += 1
                if pos > 0:
                    run.n_wins += fill_price * (1 - fee) > entry_fill * (1 + fee)
                else:
                    run.n_wins += entry_fill * (1 - fee) > fill_price * (1 + fee)
                shares = 0.0
            if want != 0:  # open with all the cash: a buy, or a short sale
                fill_price = price * (1 + slippage) if want > 0 else price * (1 - slippage)
                qty = cash / (fill_price * (1 + fee))
                shares = want * qty
                cash -= shares * fill_price + fee * qty * fill_price
                run.traded += qty * fill_price
                run.n_trades += 1
                entry_fill = fill_price
            pos = want
        equity = cash + shares * close[i]
        run.returns.append(equity / previous - 1.0)
        run.equity.append(equity)
        run.held.append(pos)
        previous = equity
    return run


def statistics(run: Run) -> dict[str, float]:
    """The ``results/`` statistics of one run (NaN where docs/jobs/backtest.md says so)."""
    r = np.asarray([run.returns])
    out = {
        "total_return": float(metrics.total_return(r)[0]),
        "annual_return": float(metrics.annual_return(r, periods_per_year=PPY)[0]),
        "annual_volatility": float(metrics.annual_volatility(r, periods_per_year=PPY)[0]),
        "sharpe": float(metrics.sharpe_ratio(r, periods_per_year=PPY)[0]),
        "sortino": float(metrics.sortino_ratio(r, periods_per_year=PPY)[0]),
        "max_drawdown": float(metrics.max_drawdown(r)[0]),
        "n_trades": float(run.n_trades),
        "win_rate": run.n_wins / run.n_closed if run.n_closed else math.nan,
        "exposure": sum(h != 0 for h in run.held) / len(run.held) if run.held else math.nan,
        "turnover": run.traded / _mean(run.equity) if run.equity else math.nan,
    }
    return out


# ---------------------------------------------------------------------------------------------
# A 10-day path worked out by hand: sma-cross fast=2 slow=3, fee 1%, slippage 0.5%.
#
#   day     0    1    2    3    4    5     6     7     8     9
#   open   10   10   10  9.5    9   10  11.5  12.5    13  10.5
#   close  10   10   10    9    9   11    12    13    10     9
#   sma2    -   10   10  9.5    9   10  11.5  12.5  11.5   9.5
#   sma3    -    -   10 9.67 9.33 9.67 10.67    12 11.67 10.67
#   target  0    0    0    0    0    1     1     1     0     0   (1 while sma2 > sma3)
#
# --fill close: buy at day 5's close, 11 * 1.005 = 11.055, shares q = 1 / (11.055 * 1.01);
# equity q*11, q*12, q*13 on days 5-7; sell at day 8's close, 10 * 0.995 = 9.95, cash
# q * 9.95 * 0.99 from day 8 on. Loss (9.95 * 0.99 < 11.055 * 1.01). Traded value q * (11.055 +
# 9.95). In the market at the closes of days 5, 6, 7: exposure 3/10. Drawdown from the peak q*13
# to q*9.8505.
#
# --fill next-open: the day-5 signal buys at day 6's open, 11.5 * 1.005 = 11.5575,
# q = 1 / (11.5575 * 1.01); equity q*12, q*13, q*10 on days 6-8; the day-8 signal sells at day
# 9's open, 10.5 * 0.995 = 10.4475, cash q * 10.4475 * 0.99 on day 9. Long at the closes of days
# 6, 7, 8: exposure 3/10. Drawdown from q*13 to q*10.
HAND_OPEN = [10.0, 10.0, 10.0, 9.5, 9.0, 10.0, 11.5, 12.5, 13.0, 10.5]
HAND_CLOSE = [10.0, 10.0, 10.0, 9.0, 9.0, 11.0, 12.0, 13.0, 10.0, 9.0]
HAND_TARGET = [0, 0, 0, 0, 0, 1, 1, 1, 0, 0]
HAND_FEE, HAND_SLIPPAGE = 0.01, 0.005

_QC = 1 / (11.055 * 1.01)
_QO = 1 / (11.5575 * 1.01)
HAND_EQUITY = {
    "close": [1.0] * 5 + [_QC * 11, _QC * 12, _QC * 13, _QC * 9.8505, _QC * 9.8505],
    "next-open": [1.0] * 6 + [_QO * 12, _QO * 13, _QO * 10, _QO * 10.4475 * 0.99],
}
HAND_STATS = {
    "close": {
        "total_return": _QC * 9.8505 - 1,
        "max_drawdown": 9.8505 / 13 - 1,
        "n_trades": 1,
        "win_rate": 0.0,
        "exposure": 0.3,
        "turnover": _QC * (11.055 + 9.95) / (sum(HAND_EQUITY["close"]) / 10),
    },
    "next-open": {
        "total_return": _QO * 10.4475 * 0.99 - 1,
        "max_drawdown": 10 / 13 - 1,
        "n_trades": 1,
        "win_rate": 0.0,
        "exposure": 0.3,
        "turnover": _QO * (11.5575 + 10.4475) / (sum(HAND_EQUITY["next-open"]) / 10),
    },
}


def test_reference_targets_of_the_hand_path() -> None:
    params = {"fast": 2, "slow": 3}
    assert targets("sma-cross", HAND_CLOSE, params, False) == HAND_TARGET
    # Long-short: short while sma2 < sma3 (days 3, 4, 8, 9); day 2 has sma2 == sma3.
    assert targets("sma-cross", HAND_CLOSE, params, True) == [0, 0, 0, -1, -1, 1, 1, 1, -1, -1]


def test_reference_execution_of_the_hand_path() -> None:
    for fill in ("close", "next-open"):
        run = execute(
            HAND_OPEN, HAND_CLOSE, HAND_TARGET, fill=fill, fee=HAND_FEE, slippage=HAND_SLIPPAGE
        )
        np.testing.assert_allclose(run.equity, HAND_EQUITY[fill], rtol=1e-12)
        stats = statistics(run)
        for name, expected in HAND_STATS[fill].items():
            assert stats[name] == pytest.approx(expected, rel=1e-12), (fill, name)


def test_reference_short_sale_and_cover() -> None:
    # Short at 10 (fill 10 * 0.995 = 9.95, q = 1 / (9.95 * 1.01)), cash 1 + q * 9.95 * 0.99;
    # cover at 8 (fill 8.04): cash - q * 8.04 * 1.01. Equity on day 1 = cash - q * 9.
    run = execute([10, 9, 8], [10, 9, 8], [-1, -1, 0], fill="close", fee=0.01, slippage=0.005)
    q = 1 / (9.95 * 1.01)
    cash = 1 + q * 9.95 * 0.99
    np.testing.assert_allclose(
        run.equity, [cash - q * 10, cash - q * 9, cash - q * 8.04 * 1.01], rtol=1e-12
    )
    assert (run.n_trades, run.n_closed, run.n_wins) == (1, 1, 1)

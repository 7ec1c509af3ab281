"""Zero-cost runs of every strategy equal vectorbt's target-percent portfolio to 1e-9.

The prices are real: the daily closes of 20 large US stocks (1990-2022) that skfolio ships as
``load_sp500_dataset`` (no package on PyPI ships real multi-symbol opens and volumes, so the
next-open runs there fill at the previous row's close, a real price too; the generator's
opens, which differ from the closes, are checked as well). Two symbols are cut to make a listing
(AMD trades from the 300th session) and a delisting (GE stops on a day that is no fill day of
the schedules here, which the test checks, so vectorbt can be told to sell it at that close).

Selection is reimplemented here with plain loops over each symbol's own rows, so the test
checks the kernel's scores, eligibility and ranking as well as its execution.
"""

from __future__ import annotations

import datetime as dt
import functools
import math
from collections.abc import Mapping
from decimal import Decimal

import numpy as np
import pandas as pd
import pytest
import vectorbt as vbt
from skfolio import datasets as skfolio_datasets

from analytics.generate.calendar import trading_days
from analytics.generate.daily import initial_state, make_universe, simulate_year
from analytics.jobs.portfolio_backtest.kernel import Panel, Rules, simulate

# vectorbt's numba compilation and day loops dominate: outside the fast lane.
pytestmark = pytest.mark.slow

LISTING_ROW, DELISTING_ROW = 300, 2005  # GE's last row is 2004

COMBOS: Mapping[str, list[dict[str, float]]] = {
    "xs-momentum": [
        {"lookback": 126, "skip": 5, "quantile": 0.2, "rebalance": 21},
        {"lookback": 126, "skip": 5, "quantile": 0.3, "rebalance": 10},
        {"lookback": 252, "skip": 21, "quantile": 0.1, "rebalance": 21},
    ],
    "xs-reversal": [
        {"lookback": 5, "quantile": 0.25, "rebalance": 5},
        {"lookback": 3, "quantile": 0.1, "rebalance": 7},
    ],
    "low-volatility": [
        {"window": 30, "quantile": 0.3, "rebalance": 10},
        {"window": 63, "quantile": 0.2, "rebalance": 21},
    ],
}
RULES = [
    Rules(fill="close"),
    Rules(fill="close", direction="long-short", weighting="inverse-vol"),
    Rules(fill="next-open", weighting="inverse-vol"),
    Rules(fill="next-open", direction="long-short"),
]


def _real_panel() -> Panel:
    frame = skfolio_datasets.load_sp500_dataset().loc["2008":]
    close = frame.to_numpy(dtype=float)
    cols = list(frame.columns)
    close[:LISTING_ROW, cols.index("AMD")] = np.nan
    close[DELISTING_ROW:, cols.index("GE")] = np.nan
    # The open of a row is the symbol's previous close (its own first row: its close).
    prev = pd.DataFrame(close).shift(1).to_numpy()
    open_ = np.where(np.isnan(prev), close, prev)
    volume = np.where(np.isnan(close), np.nan, 1e6)
    return Panel(
        frame.index.to_numpy().astype("datetime64[D]"), np.array(cols), open_, close, volume
    )


@functools.cache
def _generated_panel() -> Panel:
    """40 generated symbols over two years, halts removed (every listed symbol trades daily)."""
    rng = np.random.default_rng(20)
    days = trading_days(dt.date(2022, 1, 3), dt.date(2023, 12, 29))
    universe = make_universe(rng, 40, len(days))
    state = initial_state(universe)
    years = [
        days[days.astype("datetime64[Y]") == y] for y in np.unique(days.astype("datetime64[Y]"))
    ]
    parts = [simulate_year(rng, universe, state, d) for d in years]
    opens = np.vstack([p.open for p in parts])
    closes = np.vstack([p.close for p in parts])
    volumes = np.vstack([p.volume for p in parts])
    listed = np.arange(len(days))[:, None] >= universe.listing[None, :]
    nan = np.nan
    return Panel(
        days,
        np.array(universe.symbols),
        np.where(listed, opens, nan),
        np.where(listed, closes, nan),
        np.where(listed, volumes, nan),
    )


def _own_score(
    strategy: str, params: Mapping[str, float], prices: list[float], j: int
) -> float | None:
    if strategy == "xs-momentum":
        lookback, skip = int(params["lookback"]), int(params["skip"])
        return prices[j - skip] / prices[j - lookback] - 1 if j >= lookback else None
    if strategy == "xs-reversal":
        lookback = int(params["lookback"])
        return -(prices[j] / prices[j - lookback] - 1) if j >= lookback else None
    window = int(params["window"])
    if j < window:
        return None
    returns = [prices[i] / prices[i - 1] - 1 for i in range(j - window + 1, j + 1)]
    return -stdev(returns)


def stdev(values: list[float]) -> float:
    """Sample standard deviation (ddof=1), two passes in plain floats."""
    mean = sum(values) / len(values)
    return math.sqrt(sum((x - mean) ** 2 for x in values) / (len(values) - 1))


def _sigma(prices: list[float], j: int) -> float | None:
    """Std of the 20 returns among the symbol's 21 rows before its row j."""
    if j < 21:
        return None
    return stdev([prices[i] / prices[i - 1] - 1 for i in range(j - 20, j)])


def reference_orders(
    panel: Panel, strategy: str, params: Mapping[str, float], rules: Rules
) -> dict[int, dict[str, float]]:
    """Fill day -> target weight of each symbol, from plain loops over each symbol's rows."""
    names = [str(s) for s in panel.symbols]
    rows = {s: np.flatnonzero(~np.isnan(panel.close[:, i])) for i, s in enumerate(names)}
    prices = {s: [float(x) for x in panel.close[rows[s], i]] for i, s in enumerate(names)}
    volumes = {s: [float(x) for x in panel.volume[rows[s], i]] for i, s in enumerate(names)}
    row_of = {s: {int(day): j for j, day in enumerate(rows[s])} for s in names}

    def eligible(t: int) -> dict[str, tuple[float, float]]:
        out = {}
        for s in names:
            j = row_of[s].get(t)
            if j is None or prices[s][j] < rules.min_price:
                continue
            score = _own_score(strategy, params, prices[s], j)
            if score is None:
                continue
            if rules.min_adv > 0:
                dollars = [prices[s][i] * volumes[s][i] for i in range(j - 20, j)]
                if j < 20 or sum(dollars) / 20 < rules.min_adv:
                    continue
            # Eligibility is the score's and --min-adv's alone; sigma only weights.
            out[s] = (score, _sigma(prices[s], j))
        return out

    start = next(t for t in range(panel.n_dates) if eligible(t))
    orders = {}
    for t in range(start, panel.n_dates, int(params["rebalance"])):
        fill = t + 1 if rules.fill == "next-open" else t
        if fill >= panel.n_dates:
            break
        found = eligible(t)
        ranked = sorted(found, key=lambda s: (-found[s][0], s))
        n = len(ranked)
        k = math.ceil(Decimal(str(params["quantile"])) * n)
        side = 1.0 if rules.direction == "long" else 0.5
        longs = ranked[:k]
        m = min(k, n - k) if rules.direction == "long-short" else 0
        shorts = ranked[n - m :] if m else []
        w = dict.fromkeys(names, 0.0)
        for group, sign in ((longs, side), (shorts, -0.5)):
            inv = dict.fromkeys(group, 1.0)
            if rules.weighting == "inverse-vol":
                # A name without a positive 20-return sigma counts as the group's mean 1/sigma
                # (all of them without: equal weights).
                known = {s: 1 / found[s][1] for s in group if found[s][1]}
                typical = sum(known.values()) / len(known) if known else 1.0
                inv = {s: known.get(s, typical) for s in group}
            for s in group:
                w[s] = sign * inv[s] / sum(inv.values())
        orders[fill] = w
    return orders


def vectorbt_value(
    panel: Panel, orders: Mapping[int, Mapping[str, float]], fill: str
) -> np.ndarray:
    """vectorbt's value series: target percents on fill days, at the fill price."""
    names = [str(s) for s in panel.symbols]
    size = np.full(panel.close.shape, np.nan)
    price = (panel.open if fill == "next-open" else panel.close).copy()
    for day, weights in orders.items():
        for i, s in enumerate(names):
            if panel.has_row[day, i]:
                size[day, i] = weights[s]
    for i in np.flatnonzero(panel.last_row < panel.n_dates - 1):
        day = int(panel.last_row[i])
        # The kernel sells a delisting holding at that close; a fill that day would clash.
        assert day not in orders, f"{names[i]}'s last row {day} is a fill day"
        size[day, i], price[day, i] = 0.0, panel.close[day, i]
    close = pd.DataFrame(panel.close).ffill().bfill().to_numpy()
    pf = vbt.Portfolio.from_orders(
        close,
        size,
        size_type="targetpercent",
        price=price,
        init_cash=1.0,
        cash_sharing=True,
        group_by=np.zeros(panel.n_symbols, dtype=int),
        call_seq="auto",
        # vectorbt's default min_size (1e-8 shares) would drop real rebalancing trades of a
        # portfolio worth 1.0 (seen: a 6e-10-share top-up, and the values drift by 3e-9).
        min_size=0.0,
        freq="1D",
    )
    return np.asarray(pf.value().to_numpy(), dtype=float)


@pytest.fixture(scope="module")
def real_panel() -> Panel:
    return _real_panel()


@pytest.mark.parametrize("rules", RULES, ids=lambda r: f"{r.fill}-{r.direction}-{r.weighting}")
@pytest.mark.parametrize("strategy", list(COMBOS))
def test_equals_vectorbt_on_real_prices(real_panel: Panel, strategy: str, rules: Rules) -> None:
    runs = simulate(real_panel, strategy, COMBOS[strategy], rules)
    for params, run in zip(COMBOS[strategy], runs, strict=True):
        orders = reference_orders(real_panel, strategy, params, rules)
        first = min(orders)
        assert run.first_fill == first
        assert run.n_rebalances == len(orders)
        value = vectorbt_value(real_panel, orders, rules.fill)[first:]
        np.testing.assert_allclose(run.equity, value, rtol=0, atol=1e-9, err_msg=str(params))
        assert run.equity[-1] != pytest.approx(1.0, abs=1e-3)  # the portfolio did move


@pytest.mark.parametrize(
    ("direction", "weighting"), [("long", "inverse-vol"), ("long-short", "equal")]
)
@pytest.mark.parametrize("strategy", list(COMBOS))
def test_equals_vectorbt_on_generated_opens(strategy: str, direction: str, weighting: str) -> None:
    panel = _generated_panel()
    assert np.nanmax(np.abs(panel.open / panel.close - 1)) > 0.01  # opens are not closes
    assert (panel.last_row[panel.last_row >= 0] == panel.n_dates - 1).all()  # no delisting
    assert (panel.row_number[0] < 0).any()  # a listing inside the range
    rules = Rules(fill="next-open", direction=direction, weighting=weighting)  # type: ignore[arg-type]
    combos = COMBOS[strategy]
    for params, run in zip(combos, simulate(panel, strategy, combos, rules), strict=True):
        orders = reference_orders(panel, strategy, params, rules)
        value = vectorbt_value(panel, orders, rules.fill)[min(orders) :]
        np.testing.assert_allclose(run.equity, value, rtol=0, atol=1e-9, err_msg=str(params))

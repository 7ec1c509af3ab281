"""The kernel, vectorized across combinations, against a plain loop written from the issue.

Generated prices with everything the rules must handle: listings, halts (a symbol without a
row on some days, fill days included), a delisting inside the range, and every cost at once.
The reference walks one combination day by day and symbol by symbol; its target weights come
from the plain-loop selection of tests/test_portfolio_vectorbt.py.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Mapping

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from analytics.generate.calendar import trading_days
from analytics.generate.daily import initial_state, make_universe, simulate_year
from analytics.jobs.portfolio_backtest.kernel import Panel, Rules, simulate
from tests.test_portfolio_vectorbt import reference_orders, stdev

# A plain day-by-day reference loop over generated markets: outside the fast lane.
pytestmark = pytest.mark.slow

COMBOS: Mapping[str, list[dict[str, float]]] = {
    "xs-momentum": [
        {"lookback": 60, "skip": 5, "quantile": 0.2, "rebalance": 10},
        {"lookback": 60, "skip": 5, "quantile": 0.3, "rebalance": 7},
        {"lookback": 40, "skip": 0, "quantile": 0.1, "rebalance": 10},
    ],
    "xs-reversal": [
        {"lookback": 5, "quantile": 0.25, "rebalance": 5},
        {"lookback": 5, "quantile": 0.1, "rebalance": 3},
    ],
    "low-volatility": [
        {"window": 30, "quantile": 0.3, "rebalance": 10},
        {"window": 20, "quantile": 0.2, "rebalance": 21},
    ],
}
COSTS = {"fees_bps": 3.0, "slippage_bps": 7.0, "impact_coefficient": 0.8, "borrow_bps": 150.0}
RULES = [
    Rules(fill="next-open", direction="long-short", weighting="inverse-vol", **COSTS),
    Rules(fill="close", direction="long-short", min_adv=2e7, **COSTS),
    Rules(fill="close", weighting="inverse-vol", min_price=20.0, **COSTS),
    Rules(fill="next-open", **COSTS),
]


def _panel() -> Panel:
    """30 generated symbols over 15 months, with extra halts and one symbol delisting."""
    rng = np.random.default_rng(7)
    days = trading_days(dt.date(2022, 1, 3), dt.date(2023, 3, 31))
    universe = make_universe(rng, 30, len(days))
    state = initial_state(universe)
    year_of = days.astype("datetime64[Y]")
    parts = [simulate_year(rng, universe, state, days[year_of == y]) for y in np.unique(year_of)]
    present = np.vstack([p.present for p in parts])
    present &= rng.random(present.shape) > 0.01  # about one symbol-day in a hundred halted
    present[200:, 3] = False  # symbol 3's last row is day 199 at the latest
    grids = [
        np.where(present, np.vstack([getattr(p, f) for p in parts]), np.nan)
        for f in ("open", "close", "volume")
    ]
    return Panel(days, np.array(universe.symbols), grids[0], grids[1], grids[2])


def _decision_stats(panel: Panel, s: int, t: int) -> tuple[float, float]:
    """Sigma of the 20 returns among the symbol's 21 rows before t, and its 20-row mean volume."""
    rows = np.flatnonzero(~np.isnan(panel.close[:t, s]))[-21:]
    c = [float(x) for x in panel.close[rows, s]]
    if len(c) < 21:
        return math.nan, math.nan
    sigma = stdev([c[i] / c[i - 1] - 1 for i in range(1, 21)])
    return sigma, float(np.mean(panel.volume[rows[1:], s]))


def reference_run(
    panel: Panel, strategy: str, params: Mapping[str, float], rules: Rules
) -> dict[str, object]:
    orders = reference_orders(panel, strategy, params, rules)
    lag = 1 if rules.fill == "next-open" else 0
    fill_price = panel.open if rules.fill == "next-open" else panel.close
    n_dates, n_sym = panel.close.shape
    last_close = [[math.nan] * n_sym]
    for t in range(n_dates):
        prev = last_close[-1]
        last_close.append(
            [
                float(panel.close[t, s]) if not math.isnan(panel.close[t, s]) else prev[s]
                for s in range(n_sym)
            ]
        )
    last_close = last_close[1:]
    last_row = [int(np.flatnonzero(~np.isnan(panel.close[:, s]))[-1]) for s in range(n_sym)]
    names = [str(x) for x in panel.symbols]
    fee, slip = rules.fees_bps / 1e4, rules.slippage_bps / 1e4
    shares = [0.0] * n_sym
    cash = 1.0
    pending: dict[int, float] = {}
    impact_of = [0.0] * n_sym
    totals = {"fees": 0.0, "slippage": 0.0, "impact": 0.0, "borrow": 0.0, "traded": 0.0}

    def trade(s: int, delta: float, price: float, impact: bool) -> None:
        nonlocal cash
        value = abs(delta) * price
        cash -= delta * price + value * (fee + slip)
        totals["fees"] += value * fee
        totals["slippage"] += value * slip
        totals["traded"] += value
        if impact and rules.impact_coefficient > 0:
            cost = impact_of[s] * math.sqrt(abs(delta)) * value
            cash -= cost
            totals["impact"] += cost
        shares[s] += delta

    first = min(orders)
    equity, longs, shorts = [], 0, 0
    for t in range(first, n_dates):
        has = [not math.isnan(panel.close[t, s]) for s in range(n_sym)]
        if t in orders:
            pending = {}
            price = [fill_price[t, s] if has[s] else last_close[t][s] for s in range(n_sym)]
            value = cash + sum(shares[s] * price[s] for s in range(n_sym) if shares[s])
            for s in range(n_sym):
                sigma, adv = _decision_stats(panel, s, t - lag)
                base = rules.impact_coefficient * sigma / math.sqrt(adv) if adv > 0 else 0.0
                impact_of[s] = base if math.isfinite(base) else 0.0
                w = orders[t][names[s]]
                delta = w * value / price[s] - shares[s] if (w or shares[s]) else 0.0
                if delta and has[s]:
                    trade(s, delta, price[s], True)
                elif delta:
                    pending[s] = delta
        else:
            for s in [s for s in pending if has[s]]:
                trade(s, pending.pop(s), float(fill_price[t, s]), True)
        for s in range(n_sym):
            if last_row[s] == t < n_dates - 1:
                if shares[s]:
                    trade(s, -shares[s], float(panel.close[t, s]), False)
                pending.pop(s, None)
        charge = sum(-shares[s] * last_close[t][s] for s in range(n_sym) if shares[s] < 0)
        charge *= rules.borrow_bps / 1e4 / 252
        cash -= charge
        totals["borrow"] += charge
        equity.append(cash + sum(shares[s] * last_close[t][s] for s in range(n_sym) if shares[s]))
        longs += sum(x > 0 for x in shares)
        shorts += sum(x < 0 for x in shares)
    days = len(equity)
    return {
        "first_fill": first,
        "n_rebalances": len(orders),
        "equity": np.array(equity),
        "turnover": totals["traded"] / np.mean(equity) * 252 / days,
        "avg_long": longs / days,
        "avg_short": shorts / days,
        "cost_fees": totals["fees"],
        "cost_slippage": totals["slippage"],
        "cost_impact": totals["impact"],
        "cost_borrow": totals["borrow"],
        "holdings": {names[s]: shares[s] for s in range(n_sym) if shares[s]},
    }


@pytest.fixture(scope="module")
def panel() -> Panel:
    p = _panel()
    assert (p.last_row < p.n_dates - 1).any()  # a delisting
    assert (p.row_number[0] < 0).any()  # a listing
    return p


@pytest.mark.parametrize("rules", RULES, ids=lambda r: f"{r.fill}-{r.direction}-{r.weighting}")
@pytest.mark.parametrize("strategy", list(COMBOS))
def test_kernel_equals_plain_loop(panel: Panel, strategy: str, rules: Rules) -> None:
    runs = simulate(panel, strategy, COMBOS[strategy], rules, holdings=True)
    for params, run in zip(COMBOS[strategy], runs, strict=True):
        ref = reference_run(panel, strategy, params, rules)
        assert run.first_fill == ref["first_fill"]
        assert run.n_rebalances == ref["n_rebalances"]
        np.testing.assert_allclose(run.equity, ref["equity"], rtol=1e-11, err_msg=str(params))
        for name in (
            "turnover",
            "avg_long",
            "avg_short",
            "cost_fees",
            "cost_slippage",
            "cost_impact",
            "cost_borrow",
        ):
            assert getattr(run, name) == pytest.approx(ref[name], rel=1e-10, abs=1e-15), name
        assert run.cost_impact > 0 and run.cost_fees > 0
        assert run.holdings is not None
        held = dict(zip(run.holdings.symbols, run.holdings.shares, strict=True))
        assert held.keys() == ref["holdings"].keys()  # type: ignore[union-attr]
        for symbol, shares in held.items():
            assert shares == pytest.approx(ref["holdings"][symbol], rel=1e-10)  # type: ignore[index]


@settings(
    max_examples=6, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    scale=st.lists(st.floats(0.01, 100.0), min_size=31, max_size=31),
    strategy=st.sampled_from(list(COMBOS)),
    rules=st.sampled_from([r for r in RULES if r.min_price == 0]),
)
def test_price_units_do_not_matter(
    panel: Panel, scale: list[float], strategy: str, rules: Rules
) -> None:
    # Quoting a symbol in other units (prices x lambda, share volumes / lambda) changes no
    # score, no dollar ADV, no weight, and every cost is a function of traded value, sigma and
    # shares / ADV: the equity curves are the same (--min-price, in price units, is left out).
    lam = np.array(scale)
    scaled = Panel(
        panel.dates, panel.symbols, panel.open * lam, panel.close * lam, panel.volume / lam
    )
    before = simulate(panel, strategy, COMBOS[strategy], rules)
    after = simulate(scaled, strategy, COMBOS[strategy], rules)
    for a, b in zip(before, after, strict=True):
        np.testing.assert_allclose(b.equity, a.equity, rtol=1e-9)
        assert b.cost_impact == pytest.approx(a.cost_impact, rel=1e-8)

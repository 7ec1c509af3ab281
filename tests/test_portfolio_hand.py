"""The portfolio kernel on hand-worked paths: every equity value derived in the comments.

Scores use xs-reversal with lookback 1 (score = -(close[t] / close[t-1] - 1)) so that each
ranking can be read off the closes.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from analytics.errors import InputError
from analytics.jobs.portfolio_backtest.kernel import Panel, Rules, panel_from_rows, simulate
from analytics.jobs.portfolio_backtest.scores import decide, first_eligible
from analytics.jobs.portfolio_backtest.selection import long_count, target_weights

NAN = float("nan")


def _panel(symbols: list[str], open_: list[list[float]], close: list[list[float]]) -> Panel:
    """Rows are days, columns symbols; volume 1,000 shares wherever there is a row."""
    c = np.array(close, dtype=float)
    o = np.array(open_, dtype=float)
    days = np.arange("2024-01-01", len(c), dtype="datetime64[D]")
    return Panel(days, np.array(symbols), o, c, np.where(np.isnan(c), NAN, 1000.0))


def _reversal(quantile: float, rebalance: int) -> dict[str, float]:
    return {"lookback": 1, "quantile": quantile, "rebalance": rebalance}


# Case 1: three symbols, close fills, long the top 1 (k = ceil(0.3 x 3) = 1), every 2 sessions.
CLOSE_1 = [
    [10.0, 20.0, 30.0],
    [11.0, 19.0, 30.0],
    [12.0, 18.0, 33.0],
    [12.0, 20.0, 30.0],
    [13.0, 21.0, 30.0],
    [14.0, 20.0, 36.0],
]


def test_close_fill_long_only_zero_cost() -> None:
    panel = _panel(["A", "B", "C"], CLOSE_1, CLOSE_1)
    run = simulate(panel, "xs-reversal", [_reversal(0.3, 2)], Rules(fill="close"))[0]
    # Day 0 has no return yet: the first eligible day is 1, so decisions (= fills) on 1, 3, 5.
    # Day 1 scores: A -(11/10-1) = -0.1, B -(19/20-1) = +0.05, C 0 -> long B.
    #   1.0 buys 1/19 share of B at 19: equity 1/19 x 19 = 1.
    # Day 2: 1/19 x 18 = 18/19.
    # Day 3 scores: A 0, B -(20/18-1) = -1/9, C -(30/33-1) = +1/11 -> long C.
    #   V = 1/19 x 20 = 20/19; C shares (20/19)/30 = 2/57; equity 20/19.
    # Day 4: 2/57 x 30 = 20/19.
    # Day 5 scores: A -(14/13-1), B -(20/21-1) = +1/21, C -(36/30-1) = -0.2 -> long B.
    #   V = 2/57 x 36 = 24/19; equity 24/19.
    expected = [1.0, 18 / 19, 20 / 19, 20 / 19, 24 / 19]
    assert run.first_fill == 1
    assert run.n_rebalances == 3
    np.testing.assert_allclose(run.equity, expected, rtol=0, atol=1e-15)
    np.testing.assert_allclose(
        run.returns, [0.0, 18 / 19 - 1, 20 / 18 - 1, 0.0, 24 / 20 - 1], rtol=0, atol=1e-15
    )
    # Traded value: 1 (buy B) + 20/19 (sell B) + 20/19 (buy C) + 24/19 (sell C) + 24/19 (buy B)
    # over the mean equity (1 + 18/19 + 20/19 + 20/19 + 24/19) / 5, x 252 / 5 days.
    traded = 1 + 2 * 20 / 19 + 2 * 24 / 19
    mean_equity = sum(expected) / 5
    assert run.turnover == pytest.approx(traded / mean_equity * 252 / 5, rel=1e-14)
    assert run.avg_long == 1.0
    assert run.avg_short == 0.0


def test_close_fill_first_costs_count_against_one() -> None:
    panel = _panel(["A", "B", "C"], CLOSE_1, CLOSE_1)
    rules = Rules(fill="close", fees_bps=100.0, slippage_bps=50.0)
    run = simulate(panel, "xs-reversal", [_reversal(0.3, 2)], rules)[0]
    # Day 1: 1/19 share of B for 1.0, then 1% fees + 0.5% slippage on the 1.0 traded:
    # cash = 1 - 1 - 0.015 = -0.015, equity = -0.015 + 1/19 x 19 = 0.985 (first return -1.5%).
    assert run.equity[0] == pytest.approx(0.985, abs=1e-15)
    assert run.returns[0] == pytest.approx(-0.015, abs=1e-15)
    # Day 2: -0.015 + 18/19.
    assert run.equity[1] == pytest.approx(-0.015 + 18 / 19, abs=1e-15)
    # Day 3: V = -0.015 + 20/19; sell B (20/19 traded) and buy C (V traded):
    # equity = V - 0.015 x (20/19 + V).
    v3 = -0.015 + 20 / 19
    e3 = v3 - 0.015 * (20 / 19 + v3)
    assert run.equity[2] == pytest.approx(e3, abs=1e-15)
    # Fees and slippage over the run split 2:1.
    assert run.cost_fees == pytest.approx(2 * run.cost_slippage, rel=1e-12)


# Case 2: four symbols, next-open fills, long-short top/bottom 1 of xs-reversal, every 2
# sessions; fees 1%, slippage 0.5%, borrow 2,520 bps a year (0.1% a day). D lists on day 2; C's
# last row is day 4 (a delisting); B has no row on day 6 (a fill day) and trades on day 7.
OPEN_2 = [
    [10.0, 20.0, 40.0, NAN],
    [10.0, 18.0, 44.0, NAN],
    [10.0, 18.0, 44.0, 50.0],
    [11.0, 18.0, 44.0, 50.0],
    [11.0, 20.0, 40.0, 50.0],
    [12.0, 20.0, NAN, 50.0],
    [12.0, NAN, NAN, 52.0],
    [12.0, 21.0, NAN, 50.0],
]
CLOSE_2 = [
    [10.0, 20.0, 40.0, NAN],
    [10.0, 18.0, 44.0, NAN],
    [11.0, 18.0, 44.0, 50.0],
    [11.0, 20.0, 40.0, 50.0],
    [12.0, 20.0, 40.0, 50.0],
    [12.0, 22.0, NAN, 55.0],
    [12.0, NAN, NAN, 50.0],
    [12.0, 22.0, NAN, 50.0],
]


def test_next_open_long_short_with_listing_delisting_gap_and_costs() -> None:
    panel = _panel(["A", "B", "C", "D"], OPEN_2, CLOSE_2)
    rules = Rules(direction="long-short", fees_bps=100.0, slippage_bps=50.0, borrow_bps=2520.0)
    run = simulate(panel, "xs-reversal", [_reversal(0.25, 2)], rules, holdings=True)[0]
    cost, borrow = 0.015, 0.001
    # Decision day 1 (A, B, C eligible; D not listed): scores A 0, B -(18/20-1) = 0.1,
    # C -(44/40-1) = -0.1; k = ceil(0.25 x 3) = 1, m = min(1, 2) = 1: long B, short C.
    # Fill at day 2's open: V = 1; B = 0.5/18 shares, C = -0.5/44; traded 1.0, costs 0.015.
    b, c = 0.5 / 18, -0.5 / 44
    cash = 1.0 - b * 18 - c * 44 - cost * 1.0
    cash -= borrow * (-c) * 44  # day 2 borrow on C at its close 44
    e2 = cash + b * 18 + c * 44
    # Day 3 (no event): borrow on C at 40.
    cash -= borrow * (-c) * 40
    e3 = cash + b * 20 + c * 40
    # Decision day 3 (A, B, C, D eligible): A 0, B -(20/18-1) = -1/9, C -(40/44-1) = 1/11,
    # D 0 -> order C, A, D (A before D on the tie), B: long C, short B.
    # Fill at day 4's open (A 11, B 20, C 40): V = cash + b x 20 + c x 40 (= e3).
    v4 = cash + b * 20 + c * 40
    b4, c4 = -0.5 * v4 / 20, 0.5 * v4 / 40
    traded4 = abs(b4 - b) * 20 + abs(c4 - c) * 40
    cash -= (b4 - b) * 20 + (c4 - c) * 40 + cost * traded4
    b, c = b4, c4
    # C's last row is day 4: sold at its close 40, paying fees and slippage (no impact).
    cash += c * 40 * (1 - cost)
    traded_sale = c * 40
    c = 0.0
    cash -= borrow * (-b) * 20  # day 4 borrow on B at 20
    e4 = cash + b * 20
    # Day 5 (no event): borrow on B at 22.
    cash -= borrow * (-b) * 22
    e5 = cash + b * 22
    # Decision day 5 (A, B, D eligible; C gone): A 0, B -(22/20-1) = -0.1, D -(55/50-1) = -0.1
    # (the same double) -> order A, B, D: long A, short D (the bottom's tie goes to D).
    # Fill at day 6's open: A 12, D 52, B has no row (valued at its last close 22).
    v6 = cash + b * 22
    a, d = 0.5 * v6 / 12, -0.5 * v6 / 52
    traded6 = a * 12 + (-d) * 52
    cash -= a * 12 + d * 52 + cost * traded6
    # B's buy-back waits for its next row; day 6 borrow on B (last close 22) and D (close 50).
    cash -= borrow * ((-b) * 22 + (-d) * 50)
    e6 = cash + a * 12 + b * 22 + d * 50
    # Day 7: B buys back at its open 21, then borrow on D at 50.
    traded7 = (-b) * 21
    cash -= (-b) * 21 + cost * traded7
    b = 0.0
    cash -= borrow * (-d) * 50
    e7 = cash + a * 12 + d * 50
    expected = [e2, e3, e4, e5, e6, e7]
    assert run.first_fill == 2
    assert run.n_rebalances == 3  # decision day 7 has no next session to fill on
    np.testing.assert_allclose(run.equity, expected, rtol=0, atol=1e-15)
    traded = 1.0 + traded4 + traded_sale + traded6 + traded7
    assert run.cost_fees == pytest.approx(0.01 * traded, rel=1e-13)
    assert run.cost_slippage == pytest.approx(0.005 * traded, rel=1e-13)
    assert run.cost_impact == 0.0
    assert run.turnover == pytest.approx(traded / np.mean(expected) * 252 / 6, rel=1e-13)
    # Names held at each close, days 2..7: long B,B,-,-,A,A -> 1,1,0,0,1,1;
    # short C,C,B,B,{B,D},D -> 1,1,1,1,2,1.
    assert run.avg_long == pytest.approx(4 / 6)
    assert run.avg_short == pytest.approx(7 / 6)
    assert run.holdings is not None
    assert list(run.holdings.symbols) == ["A", "D"]
    np.testing.assert_allclose(run.holdings.shares, [a, d], rtol=1e-15)
    np.testing.assert_allclose(run.holdings.value, [a * 12, d * 50], rtol=1e-15)
    np.testing.assert_allclose(run.holdings.weight, [a * 12 / e7, d * 50 / e7], rtol=1e-14)
    # Borrow: the sum of the daily charges above, recomputed from the shares held.
    c2, b4s, d6 = -0.5 / 44, -0.5 * v4 / 20, -0.5 * v6 / 52
    charged = (-c2 * 44 - c2 * 40 - b4s * 20 - b4s * 22 - b4s * 22 - d6 * 50 - d6 * 50) * borrow
    assert run.cost_borrow == pytest.approx(charged, rel=1e-13)


def _alternating(low: float, high: float, n: int) -> list[float]:
    return [low if i % 2 == 0 else high for i in range(n)]


def test_impact_inverse_vol_and_min_adv() -> None:
    # A alternates 100/110 with 1,000 shares a day, B 50/60 with 2,000: 23 sessions.
    n = 23
    close = np.array([_alternating(100.0, 110.0, n), _alternating(50.0, 60.0, n)]).T
    volume = np.column_stack([np.full(n, 1000.0), np.full(n, 2000.0)])
    days = np.arange("2024-01-01", n, dtype="datetime64[D]")
    panel = Panel(days, np.array(["A", "B"]), close, close, volume)
    rules = Rules(fill="close", weighting="inverse-vol", impact_coefficient=0.5, min_adv=100_000.0)
    run = simulate(panel, "xs-reversal", [_reversal(1.0, 1)], rules)[0]
    # Eligibility is the score's history (1 row) and --min-adv's 20 rows before t: first t = 20.
    # Dollar ADV of the 20 rows before t: A (100 + 110)/2 x 1,000 = 105,000, B 55 x 2,000 =
    # 110,000: both >= 100,000. Sigma needs the 20 returns of the 21 rows before t: unknown on
    # day 20 for both, so the longs are equally weighted and the trades pay no impact.
    # Day 20's closes A 100, B 50: shares 0.5/100 and 0.5/50; equity 1.
    a0, b0 = 0.5 / 100, 0.5 / 50
    # Day 21 (A 110, B 60): V = 0.55 + 0.6 = 1.15. Sigma known now: A's returns alternate +0.1
    # and -1/11 (10 each): sigma = (0.1 + 1/11)/2 x sqrt(20/19); B's +0.2 and -1/6.
    sa = (0.1 + 1 / 11) / 2 * math.sqrt(20 / 19)
    sb = (0.2 + 1 / 6) / 2 * math.sqrt(20 / 19)
    wa, wb = sb / (sa + sb), sa / (sa + sb)  # proportional to 1/sigma
    qa, qb = wa * 1.15 / 110, wb * 1.15 / 60
    da, db = abs(qa - a0), abs(qb - b0)
    # Impact per trade Y x sigma x sqrt(|d| / ADV) x |d| x price, ADV 1,000 and 2,000 shares.
    impact = 0.5 * (sa * math.sqrt(da / 1000) * da * 110 + sb * math.sqrt(db / 2000) * db * 60)
    # Cash after day 21: 1.15 - (qa x 110 + qb x 60) - impact = -impact.
    # Day 22 (A 100, B 50), a rebalance again, same sigmas (the 20 returns of rows 1..21 are
    # the same ten of each): V = qa x 100 + qb x 50 - impact; targets wa x V / 100, wb x V / 50.
    v = qa * 100 + qb * 50 - impact
    ea, eb = abs(wa * v / 100 - qa), abs(wb * v / 50 - qb)
    impact2 = 0.5 * (sa * math.sqrt(ea / 1000) * ea * 100 + sb * math.sqrt(eb / 2000) * eb * 50)
    expected = [1.0, 1.15 - impact, v - impact2]
    assert run.first_fill == 20
    np.testing.assert_allclose(run.equity, expected, rtol=0, atol=1e-15)
    assert run.cost_impact == pytest.approx(impact + impact2, rel=1e-13)
    # With --min-adv 108,000, A (105,000) is not eligible: all in B, weight 1, on day 20
    # without impact (no sigma yet); equity at B's closes 50, 60, 50.
    strict = Rules(fill="close", impact_coefficient=0.5, min_adv=108_000.0)
    only_b = simulate(panel, "xs-reversal", [_reversal(1.0, 5)], strict)[0]
    assert only_b.first_fill == 20 and only_b.cost_impact == 0.0
    np.testing.assert_allclose(only_b.equity, [1.0, 1.2, 1.0], rtol=0, atol=1e-15)


def test_the_schedule_does_not_depend_on_weighting_or_impact() -> None:
    """The review's bug: inverse-vol or impact made 21 rows of history part of eligibility and
    moved the first rebalance. Now every rule set starts where the score can (day 1 for
    lookback 1) and rebalances on the same days."""
    n = 30
    close = np.array([_alternating(100.0, 110.0, n), _alternating(50.0, 60.0, n)]).T
    days = np.arange("2024-01-01", n, dtype="datetime64[D]")
    panel = Panel(days, np.array(["A", "B"]), close, close, np.full((n, 2), 1000.0))
    runs = [
        simulate(panel, "xs-reversal", [_reversal(0.5, 7)], rules)[0]
        for rules in (
            Rules(),
            Rules(weighting="inverse-vol"),
            Rules(impact_coefficient=1.0),
            Rules(weighting="inverse-vol", impact_coefficient=1.0, direction="long-short"),
        )
    ]
    # Decisions 1, 8, 15, 22 (29 would fill on day 30, past the end): fills 2, 9, 16, 23.
    assert [r.first_fill for r in runs] == [2, 2, 2, 2]
    assert [r.n_rebalances for r in runs] == [4, 4, 4, 4]


def test_inverse_vol_weight_of_a_name_without_20_returns() -> None:
    """A and B have 21 rows before t = 21; C listed 3 rows before. Quantile 1, long-only.
    C's sigma is unknown: it gets the mean of the others' 1 / sigma, so weights are
    1/sa : 1/sb : (1/sa + 1/sb)/2, normalized to 1."""
    n = 22
    a = _alternating(100.0, 110.0, n)
    b = _alternating(50.0, 60.0, n)
    c = [NAN] * 18 + [20.0, 21.0, 22.0, 23.0]
    close = np.array([a, b, c]).T
    days = np.arange("2024-01-01", n, dtype="datetime64[D]")
    volume = np.where(np.isnan(close), NAN, 1000.0)
    panel = Panel(days, np.array(["A", "B", "C"]), close, close, volume)
    rules = Rules(fill="close", weighting="inverse-vol")
    run = simulate(panel, "xs-reversal", [_reversal(1.0, 21)], rules)[0]
    # The first decision is t = 1 (lookback 1), when nobody has a sigma: A and B (C is not
    # listed yet) equally weighted, 0.5 each at closes 110 and 60.
    assert run.first_fill == 1
    np.testing.assert_allclose(run.equity[:2], [1.0, 0.5 / 110 * 100 + 0.5 / 60 * 50])
    # At t = 21 the kernel's weights, from its own scores and sigmas:
    sa = (0.1 + 1 / 11) / 2 * math.sqrt(20 / 19)
    sb = (0.2 + 1 / 6) / 2 * math.sqrt(20 / 19)
    decision = decide(panel, "xs-reversal", (1,), rules, np.array([21]))
    np.testing.assert_allclose(decision.sigma[0, :2], [sa, sb], rtol=1e-12)
    assert np.isnan(decision.sigma[0, 2])
    w = target_weights(decision.score[0], decision.sigma[0], np.array([1.0]), rules)[0]
    raw = np.array([1 / sa, 1 / sb, (1 / sa + 1 / sb) / 2])
    np.testing.assert_allclose(w, raw / raw.sum(), rtol=1e-14)
    # Long-short, quantile 1/3 (k = 1 of 3): the short side holds one name, C, alone: -0.5
    # whatever its sigma (a side with no known sigma is equally weighted).
    scores = np.array([0.3, 0.2, 0.1])
    ls = target_weights(
        scores,
        decision.sigma[0],
        np.array([1 / 3]),
        Rules(direction="long-short", weighting="inverse-vol"),
    )[0]
    np.testing.assert_allclose(ls, [0.5, 0.0, -0.5], rtol=0, atol=0)


def test_scores_count_the_symbols_own_rows() -> None:
    # B has no row on day 2: its lookback-2 momentum at day 4 reaches its own row 1 (day 1).
    close = [
        [10.0, 20.0],
        [11.0, 21.0],
        [12.0, NAN],
        [13.0, 24.0],
        [14.0, 25.0],
    ]
    panel = _panel(["A", "B"], close, close)
    d = decide(panel, "xs-momentum", (2, 0), Rules(), np.array([2, 3, 4]))
    # Day 2: A 12/10 - 1 = 0.2; B has no row -> not eligible.
    # Day 3: A 13/11 - 1; B's rows are days 0, 1, 3: 24/20 - 1 (its row 2 back is day 0).
    # Day 4: A 14/12 - 1; B 25/21 - 1 (day 1, two of its rows back).
    expected = [[0.2, NAN], [13 / 11 - 1, 24 / 20 - 1], [14 / 12 - 1, 25 / 21 - 1]]
    np.testing.assert_allclose(d.score, expected, rtol=1e-15)
    # Low-volatility window 2 at day 4: B's returns 24/21 - 1 and 25/24 - 1 (own rows).
    lv = decide(panel, "low-volatility", (2,), Rules(), np.array([4]))
    rb = [24 / 21 - 1, 25 / 24 - 1]
    assert lv.score[0, 1] == pytest.approx(-abs(rb[0] - rb[1]) / math.sqrt(2), rel=1e-14)
    # First eligible day of lookback 2: day 2 (A has rows 0..2).
    assert first_eligible(panel, "xs-momentum", (2, 0), Rules()) == 2


def test_selection_counts_and_ties() -> None:
    # ceil(0.1 x 30) is 3, though 0.1 x 30 is 3.0000000000000004 in binary.
    assert list(long_count([0.1, 0.2, 0.25, 1.0], 30)) == [3, 6, 8, 30]
    # Scores with ties; columns are names ascending (A..F); D is not eligible (NaN).
    score = np.array([1.0, 2.0, 2.0, NAN, 0.5, 0.5])
    rules = Rules(direction="long-short")
    w = target_weights(score, np.ones(6), np.array([0.34, 0.2]), rules)
    # Order: B, C (tie, ascending), A, E, F -> n = 5, k = ceil(1.7) = 2, m = min(2, 3) = 2.
    np.testing.assert_allclose(w[0], [0.0, 0.25, 0.25, 0.0, -0.25, -0.25])
    # quantile 0.2: k = 1 (B), m = 1: the bottom is F (the tie E/F goes to F, name descending).
    np.testing.assert_allclose(w[1], [0.0, 0.5, 0.0, 0.0, 0.0, -0.5])


def test_rebalance_dates_start_at_the_first_eligible_day() -> None:
    # Nobody has a row before day 2 (a listing): lookback 1 makes day 3 the first eligible.
    close = [[NAN, NAN], [NAN, NAN], [10.0, NAN], [11.0, 20.0], [12.0, 21.0], [13.0, 22.0]]
    panel = _panel(["A", "B"], close, close)
    run = simulate(panel, "xs-reversal", [_reversal(0.5, 2)], Rules(fill="close"))[0]
    assert run.first_fill == 3
    assert run.n_rebalances == 2  # days 3 and 5
    # Day 3: only A is eligible (B's first row) -> all in A at 11: days 3, 4 equity 1, 12/11.
    # Day 5: A -(13/12-1) < B -(22/21-1)? -1/12 < -1/21, so long B at 22: equity 13/11.
    np.testing.assert_allclose(run.equity, [1.0, 12 / 11, 13 / 11], atol=1e-15)


def test_long_short_with_one_eligible_name_holds_half_long() -> None:
    # n = 1: k = ceil(0.1 x 1) = 1, m = min(1, 0) = 0 -> long 0.5, nobody short.
    score = np.array([NAN, 0.3, NAN])
    w = target_weights(score, np.ones(3), np.array([0.1]), Rules(direction="long-short"))
    np.testing.assert_array_equal(w, [[0.0, 0.5, 0.0]])
    # Nobody eligible: all weights 0 (the portfolio goes to cash).
    assert not target_weights(np.full(3, NAN), np.ones(3), np.array([0.5]), Rules()).any()


def test_panel_from_rows_pivots_and_checks() -> None:
    panel = panel_from_rows(
        ["2024-01-03", "2024-01-02", "2024-01-02"],
        ["B", "B", "A"],
        [21.0, 20.0, 10.0],
        [22.0, 21.0, 11.0],
        [5.0, 6.0, 7.0],
    )
    assert list(panel.symbols) == ["A", "B"]
    assert list(panel.dates.astype(str)) == ["2024-01-02", "2024-01-03"]
    np.testing.assert_array_equal(panel.close, [[11.0, 21.0], [NAN, 22.0]])
    np.testing.assert_array_equal(panel.open, [[10.0, 20.0], [NAN, 21.0]])
    np.testing.assert_array_equal(panel.last_close, [[11.0, 21.0], [11.0, 22.0]])
    np.testing.assert_array_equal(panel.last_row, [0, 1])
    with pytest.raises(InputError, match="more than one row"):
        panel_from_rows(["2024-01-02"] * 2, ["A", "A"], [1.0, 1.0], [1.0, 1.0], [1.0, 1.0])
    with pytest.raises(InputError, match="non-positive close"):
        panel_from_rows(["2024-01-02"], ["A"], [1.0], [0.0], [1.0])


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"lookback": 10, "skip": 10, "quantile": 0.1, "rebalance": 5}, "skip < lookback"),
        ({"lookback": 10, "skip": 1, "quantile": 0.0, "rebalance": 5}, "quantile"),
        ({"lookback": 10, "skip": 1, "quantile": 0.1, "rebalance": 0}, "rebalance"),
        ({"lookback": 10, "quantile": 0.1, "rebalance": 5}, "takes parameters"),
        ({"lookback": 2.5, "skip": 1, "quantile": 0.1, "rebalance": 5}, "whole number"),
    ],
)
def test_bad_parameters_are_refused(params: dict[str, float], message: str) -> None:
    panel = _panel(["A", "B", "C"], CLOSE_1, CLOSE_1)
    with pytest.raises(InputError, match=message):
        simulate(panel, "xs-momentum", [params], Rules())


def test_the_benchmark_and_the_equal_weighted_universe() -> None:
    """market-performance's convention: a symbol's return on a day it has a row after its
    first, against its previous row's close. A: 10, 11, -, 12.1; B lists on day 1: 20, 22, 22.
    Day 0: nobody has a return; day 1: A 0.1 (B's first row); day 2: B 0.1 (A has no row);
    day 3: A 12.1 / 11 - 1 = 0.1 (over its gap), B 0: the mean 0.05."""
    from analytics.jobs.portfolio_backtest.tables import market

    close = [[10.0, NAN], [11.0, 20.0], [NAN, 22.0], [12.1, 22.0]]
    panel = _panel(["A", "B"], close, close)
    named = market(panel, "B", explicit=True)
    assert named.label == "B"
    np.testing.assert_allclose(named.universe, [NAN, 0.1, 0.1, 0.05], rtol=1e-14)
    np.testing.assert_allclose(named.benchmark, [NAN, NAN, 0.1, 0.0], rtol=1e-14)
    default = market(panel, "SPX", explicit=False)  # no SPX: the universe
    assert default.label == "equal-weighted"
    np.testing.assert_array_equal(default.benchmark, default.universe)
    with pytest.raises(InputError, match="benchmark symbol 'C' has no prices"):
        market(panel, "C", explicit=True)

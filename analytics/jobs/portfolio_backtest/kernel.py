"""Cross-sectional portfolio backtests: the panel, the strategies' scores and the kernel.

Conventions where the issue leaves room (tests/test_portfolio_hand.py and _reference.py):

- k = ceil(quantile x n) with q x n rounded to 9 digits first (0.1 x 30 selects 3, not 4).
- Long-short with one eligible name: long 0.5, nobody short (the rest stays in cash).
- Sigma and ADV ("the 20 rows before t") use the symbol's own rows before the decision day;
  inverse-vol weights and impact make 21 such rows (and ADV > 0 for impact) part of
  eligibility, so a symbol has them whenever it can be bought.
- A trade waiting for a symbol's next row fills at that row's fill price (open or close) and
  pays the impact of its decision; the next rebalance of the same combination replaces it; a
  symbol that never trades again drops it.
- Forced sales and waiting trades count in turnover; borrow is charged after the day's forced
  sales (a short bought back at its last close pays no borrow that day).
"""

from analytics.jobs.portfolio_backtest.panel import Panel, panel_from_rows
from analytics.jobs.portfolio_backtest.scores import DEFAULTS, Rules
from analytics.jobs.portfolio_backtest.simulate import Holdings, Run, simulate

__all__ = ["DEFAULTS", "Holdings", "Panel", "Rules", "Run", "panel_from_rows", "simulate"]

"""Cross-sectional portfolio backtests: the panel, the strategies' scores and the kernel.

Conventions where the issue leaves room (tests/test_portfolio_hand.py and _reference.py):

- k = ceil(quantile x n) with q x n rounded to 9 digits first (0.1 x 30 selects 3, not 4).
- Long-short with one eligible name: long 0.5, nobody short (the rest stays in cash).
- Sigma and ADV ("the 20 rows before t") use the symbol's own rows before the decision day
  (sigma: the 20 returns of 21 rows). They are not part of eligibility, so the rebalance
  schedule is the same whatever the weighting and impact. A selected name without a sigma
  (fewer than 20 returns, or a flat price) weighs, with inverse-vol, the mean 1 / sigma of its
  side's names that have one (equal weights when none has); its trades pay no impact while
  sigma or ADV is unknown (or ADV is 0).
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

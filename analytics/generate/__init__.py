"""A synthetic but realistic market, written as the input datasets of ``docs/data.md``.

Daily prices with a market factor, fat tails, volatility clustering, gaps, IPOs and halts on NYSE
sessions; four model portfolios; and, for the most liquid symbols over the last sessions,
1-minute bars, parent orders and fills that agree with the daily prices.
"""

from __future__ import annotations

from analytics.generate.calendar import trading_days
from analytics.generate.market import GenerationSummary, generate_market

__all__ = ["GenerationSummary", "generate_market", "trading_days"]

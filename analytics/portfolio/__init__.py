"""Cross-sectional portfolio backtests: the panel, the strategies' scores and the kernel."""

from analytics.portfolio.panel import Panel, panel_from_rows
from analytics.portfolio.scores import DEFAULTS, Rules
from analytics.portfolio.simulate import Holdings, Run, simulate

__all__ = ["DEFAULTS", "Holdings", "Panel", "Rules", "Run", "panel_from_rows", "simulate"]

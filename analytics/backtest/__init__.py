"""The ``backtest`` job: parameter sweeps of trading rules over a universe of daily prices.

- :mod:`~analytics.backtest.grid`: grid syntax, Cartesian product, constraint filter;
- :mod:`~analytics.backtest.strategies`: one module per strategy, found by a registry;
- :mod:`~analytics.backtest.prices`: a price matrix and its rolling indicators;
- :mod:`~analytics.backtest.model`: the execution model's inputs (fills, costs, positions held);
- :mod:`~analytics.backtest.engine`, :mod:`~analytics.backtest.long_only`,
  :mod:`~analytics.backtest.long_short`, :mod:`~analytics.backtest.stats`: the vectorized
  simulation and the per-column statistics;
- :mod:`~analytics.backtest.data`: price rows read, bucketed by symbol, turned into matrices;
- :mod:`~analytics.backtest.sweep`: one task's work (a symbol bucket x a parameter chunk);
- :mod:`~analytics.backtest.portfolio`: the equal-weighted portfolio of each combination;
- :mod:`~analytics.backtest.job`: the Dask layer and the ``Backtest`` job.
"""

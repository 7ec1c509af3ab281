"""Transaction-cost analysis (``tca``) and execution reports (``execution-report``).

Modules: :mod:`~analytics.tca.kernel` (per-order costs of one partition, pure pandas/numpy),
:mod:`~analytics.tca.checks` (data checks: reject or flag), :mod:`~analytics.tca.aggregate`
(notional-weighted means and percentiles by group), :mod:`~analytics.tca.report` (the execution
report's per-order columns, daily summaries and text report), :mod:`~analytics.tca.inputs`
(reading and splitting the input files) and :mod:`~analytics.tca.job` (the Dask layer and the two
jobs).
"""

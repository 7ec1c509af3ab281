"""A tiny job from outside ``analytics/jobs/``: proof that adding a job is adding one package.

``rows-per-symbol`` counts each symbol's price rows at or above ``--min-close``, one task per
input file, and writes ``counts/`` (symbol, rows). Registered by naming this module in
``FINBATCH_JOBS`` (or with :func:`analytics.jobs.register`); nothing else in the repository
knows it.
"""

from __future__ import annotations

from dataclasses import dataclass

from analytics.jobs.contract import JobContext, JobResult, JobSpec, Table
from analytics.options import finite_float, option


@dataclass(frozen=True)
class Options:
    min_close: float = option(
        0.0, parse=finite_float, metavar="PRICE", help="count rows with close >= PRICE"
    )


def _count(url: str, min_close: float) -> dict[str, int]:
    from analytics.data.datasets import Selection, read_file

    table = read_file(url, "prices", ["symbol", "close"], Selection()).to_pandas()
    kept = table[table["close"] >= min_close]
    return {str(k): int(v) for k, v in kept.groupby("symbol", observed=True).size().items()}


def run(ctx: JobContext) -> JobResult:
    import pandas as pd

    from analytics.data.datasets import Selection, list_files
    from analytics.run.folder import write_part

    options: Options = ctx.options
    files = list_files(ctx.settings.input_url, "prices", Selection())
    futures = ctx.client.map(_count, [f.url for f in files], min_close=options.min_close)
    totals: dict[str, int] = {}
    for counts in ctx.client.gather(futures):
        for symbol, n in counts.items():
            totals[symbol] = totals.get(symbol, 0) + n
    frame = pd.DataFrame({"symbol": sorted(totals), "rows": [totals[s] for s in sorted(totals)]})
    part = write_part(ctx.settings.destination, "counts", 0, frame)
    return JobResult(parts=[part], inputs={"prices": files}, summary={"symbols": len(frame)})


JOB = JobSpec(
    name="rows-per-symbol",
    help="count each symbol's price rows (a test job)",
    options=Options,
    datasets=("prices",),
    tables=(Table("counts", key=("symbol",)),),
    run=run,
)

"""The ``execution-report`` job: per-order execution columns, exceptions, daily summaries and
``report.txt``, on the TCA plan (:mod:`analytics.jobs.tca.plan`)."""

from __future__ import annotations

from typing import Any

from distributed import Future

from analytics.data.datasets import skipped_rows
from analytics.data.storage import join
from analytics.jobs.contract import JobContext, JobResult
from analytics.jobs.tca import tasks
from analytics.jobs.tca.plan import parts_of, plan, summary_of
from analytics.jobs.tca.tasks import Summary
from analytics.run.folder import put
from analytics.run.progress import Phase

NAME = "execution-report"
REPORT_FILE = "report.txt"


def run(ctx: JobContext) -> JobResult:
    client, settings = ctx.client, ctx.settings
    out = settings.destination  # a stale report.txt went with the folder's preparation
    p = plan(client, settings, "execution-report")
    writes = []
    for name in ("orders", "exceptions"):
        table = "orders" if name == "orders" else "fill_exceptions"
        writes += [
            client.submit(tasks.write_table, out, table, i, t, p.ready, pure=False)
            for i, t in enumerate(parts_of(client, p.units, name))
        ]
    orders = parts_of(client, p.units, "orders")
    daily = client.submit(tasks.summarize_execution, out, orders, p.ready, pure=False)
    futures: list[Future[Any]] = [*writes, daily, p.ready]
    ctx.progress.wait(
        futures,
        Phase("reading", "files", weights=p.reads),
        Phase(
            "computing",
            "orders",
            weights=dict(zip([u.key for u in p.units], p.orders, strict=True)),
        ),
        # daily: desk_daily and broker_daily
        Phase("writing", "parts", weights={f.key: 1 for f in writes} | {daily.key: 2}),
    )
    results: list[Any] = client.gather(futures)
    written, text = results[-2]
    totals: Summary = results[-1]
    # The text goes last, beside the tables, once every table is written.
    put(join(out.url, REPORT_FILE), text.encode())
    summary = summary_of(p, totals)
    c = totals.counts
    summary.update(
        limit_breaches=c.limit_breaches,
        price_anomalies=c.price_anomalies,
        fills_without_bar=c.fills_without_bar,
        report=join(out.url, REPORT_FILE),
        skipped_rows=skipped_rows(client, p.sel),
    )
    return JobResult(parts=[*results[: len(writes)], *written], inputs=p.inputs, summary=summary)

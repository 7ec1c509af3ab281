"""The ``tca`` job: per-order costs and their aggregates, on the plan of :mod:`.plan`."""

from __future__ import annotations

from typing import Any

from distributed import Future

from analytics.data.datasets import skipped_rows
from analytics.jobs.contract import JobContext, JobResult
from analytics.jobs.tca import tasks
from analytics.jobs.tca.plan import parts_of, plan, summary_of
from analytics.run.display import wait_with_progress
from analytics.run.folder import WrittenPart

NAME = "tca"


def run(ctx: JobContext) -> JobResult:
    client, settings = ctx.client, ctx.settings
    p = plan(client, settings, "tca")
    out = settings.output_url
    orders = parts_of(client, p.units, "orders")
    writes = [
        client.submit(tasks.write_table, out, "orders", i, t, p.ready, pure=False)
        for i, t in enumerate(orders)
    ]
    by_orders = client.submit(tasks.aggregate_orders, out, orders, p.ready, pure=False)
    venues = parts_of(client, p.units, "venues")
    by_venue = client.submit(tasks.aggregate_venues, out, venues, p.ready, pure=False)
    futures: list[Future[Any]] = [*writes, by_orders, by_venue, p.ready]
    wait_with_progress(futures, NAME)
    results: list[Any] = client.gather(futures)
    parts: list[WrittenPart] = [*results[: len(writes)], *results[-3], *results[-2]]
    summary = summary_of(p, results[-1])
    summary["skipped_rows"] = skipped_rows(client, p.sel)
    return JobResult(parts=parts, inputs=p.inputs, summary=summary)

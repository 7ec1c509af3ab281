"""The ``tca`` job: per-order costs and their aggregates, on the plan of :mod:`.plan`."""

from __future__ import annotations

from typing import Any

from distributed import Future

from analytics.data.datasets import skipped_rows
from analytics.jobs.contract import JobContext, JobResult
from analytics.jobs.tca import tasks
from analytics.jobs.tca.buckets import BUCKET_TABLES
from analytics.jobs.tca.plan import parts_of, plan, summary_of
from analytics.jobs.tca.prices import Pretrade, time_zone
from analytics.jobs.tca.tasks import Summary
from analytics.run.folder import WrittenPart
from analytics.run.progress import Phase

NAME = "tca"


def run(ctx: JobContext) -> JobResult:
    client, settings, options = ctx.client, ctx.settings, ctx.options
    pretrade = Pretrade(options.calendar, options.impact_coefficient)
    p = plan(client, settings, "tca", pretrade)
    out = settings.destination
    orders = parts_of(client, p.units, "orders")
    marks = parts_of(client, p.units, "markouts")
    writes = [
        client.submit(tasks.write_table, out, table, i, t, p.ready, pure=False)
        for table, parts in (("orders", orders), ("markouts", marks))
        for i, t in enumerate(parts)
    ]
    tz = time_zone(options.calendar)
    by_orders = [
        client.submit(tasks.aggregate_orders, out, orders, p.ready, tz, which, pure=False)
        for which in ("groups", "buckets")
    ]
    venues = parts_of(client, p.units, "venues")
    venue_marks = parts_of(client, p.units, "venue_markouts")
    by_venue = client.submit(tasks.aggregate_venues, out, venues, venue_marks, p.ready, pure=False)
    futures: list[Future[Any]] = [*writes, *by_orders, by_venue, p.ready]
    groups = {"groups": len(tasks.ORDER_GROUPS), "buckets": len(BUCKET_TABLES)}
    written = {f.key: 1 for f in writes} | {by_venue.key: 1}
    written |= {f.key: groups[which] for f, which in zip(by_orders, groups, strict=True)}
    ctx.progress.wait(
        futures,
        Phase("reading", "files", weights=p.reads),
        Phase(
            "computing",
            "orders",
            weights=dict(zip([u.key for u in p.units], p.orders, strict=True)),
        ),
        Phase("writing", "parts", weights=written),
    )
    results: list[Any] = client.gather(futures)
    parts: list[WrittenPart] = [*results[: len(writes)]]
    for written in results[len(writes) : -1]:
        parts += written
    totals: Summary = results[-1]
    summary = summary_of(p, totals)
    summary["symbols_without_adv"] = totals.without_adv
    summary["impact_coefficient"] = pretrade.impact_coefficient
    summary["skipped_rows"] = skipped_rows(client, p.sel)
    return JobResult(parts=parts, inputs=p.inputs, summary=summary)

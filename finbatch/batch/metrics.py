"""Job metrics published by the main node when a job ends, and its one-line summary.

:func:`job_metrics` reads them off the committed manifest (duration, bytes read, tasks, the
cluster's workers and hosts) and the input files' Parquet footers (rows read). They are
published as a CloudWatch embedded-metric-format (EMF) log line by default: the awslogs driver
ships stdout to CloudWatch Logs, which turns the line into metrics with no API call and no
extra IAM permission. ``FINBATCH_METRICS=cloudwatch`` sends them with PutMetricData instead
(through the gateway), ``off`` not at all. Dimensions: ``Job`` (the finbatch job) and ``Queue``
(``FINBATCH_QUEUE``, set by ``batch submit``).

The summary line gives the duration, node-hours and an estimated cost: node-hours x
``FINBATCH_NODE_HOURLY_PRICE`` (USD per node-hour, set by ``batch submit --node-price``).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pyarrow.parquet as pq

from analytics.data.storage import open_fs
from finbatch.batch.submit import PRICE_VARIABLE, QUEUE_VARIABLE

NAMESPACE = "finbatch"
#: ``FINBATCH_METRICS``: emf (default), cloudwatch (PutMetricData) or off.
MODE_VARIABLE = "FINBATCH_METRICS"
#: Metric name -> CloudWatch unit.
UNITS = {
    "Duration": "Seconds",
    "RowsRead": "Count",
    "BytesRead": "Bytes",
    "Tasks": "Count",
    "WorkersJoined": "Count",
    "NodesLost": "Count",
}


@dataclass(frozen=True)
class JobMetrics:
    job: str
    queue: str
    duration_s: float
    rows_read: int
    bytes_read: int
    tasks: int
    workers: int
    nodes: int
    nodes_lost: int

    def values(self) -> dict[str, float]:
        return {
            "Duration": self.duration_s,
            "RowsRead": self.rows_read,
            "BytesRead": self.bytes_read,
            "Tasks": self.tasks,
            "WorkersJoined": self.workers,
            "NodesLost": self.nodes_lost,
        }

    def dimensions(self) -> dict[str, str]:
        return {"Job": self.job, "Queue": self.queue}


def rows_in(urls: Sequence[str]) -> int:
    """Rows of the Parquet files at ``urls``, from their footers."""
    total = 0
    for url in urls:
        fs, path = open_fs(url)
        with fs.open(path, "rb") as handle:
            total += pq.ParquetFile(handle).metadata.num_rows
    return total


def job_metrics(manifest: Mapping[str, Any], env: Mapping[str, str], rows_read: int) -> JobMetrics:
    """The metrics of a committed run (``env``: the container's environment)."""
    inputs = manifest.get("inputs", {})
    outputs = manifest.get("outputs", {})
    cluster = manifest.get("cluster", {})
    nodes = int(env.get("AWS_BATCH_JOB_NUM_NODES") or 1)
    hosts = len(cluster.get("hosts") or []) or 1
    tasks = manifest.get("summary", {}).get("tasks")
    if not isinstance(tasks, int):  # jobs that do not count them: one task per part written
        tasks = sum(len(t.get("files", [])) for t in outputs.values())
    return JobMetrics(
        job=str(manifest.get("job")),
        queue=env.get(QUEUE_VARIABLE, "none"),
        duration_s=float(manifest.get("duration_s", 0.0)),
        rows_read=rows_read,
        bytes_read=sum(int(d.get("bytes", 0)) for d in inputs.values()),
        tasks=tasks,
        workers=int(cluster.get("workers", 0)),
        nodes=nodes,
        nodes_lost=max(0, nodes - hosts),
    )


def emf_line(m: JobMetrics, timestamp_ms: int) -> str:
    """One CloudWatch embedded-metric-format log line of ``m``."""
    body: dict[str, Any] = {
        "_aws": {
            "Timestamp": timestamp_ms,
            "CloudWatchMetrics": [
                {
                    "Namespace": NAMESPACE,
                    "Dimensions": [["Job", "Queue"]],
                    "Metrics": [{"Name": n, "Unit": u} for n, u in UNITS.items()],
                }
            ],
        },
        **m.dimensions(),
        **m.values(),
    }
    return json.dumps(body, sort_keys=True)


def metric_data(m: JobMetrics) -> dict[str, Any]:
    """The PutMetricData request of ``m``."""
    dims = [{"Name": k, "Value": v} for k, v in m.dimensions().items()]
    return {
        "Namespace": NAMESPACE,
        "MetricData": [
            {"MetricName": n, "Dimensions": dims, "Value": float(v), "Unit": UNITS[n]}
            for n, v in m.values().items()
        ],
    }


def node_price(env: Mapping[str, str]) -> float | None:
    raw = env.get(PRICE_VARIABLE)
    try:
        return float(raw) if raw else None
    except ValueError:
        return None


def summary_line(m: JobMetrics, price: float | None, run_id: str) -> str:
    """``finbatch: JOB run R: 612.4 s on 4 nodes = 0.68 node-hours, ~$0.46 at $0.68/node-h``."""
    node_hours = m.duration_s * m.nodes / 3600
    cost = (
        f"~${node_hours * price:,.2f} at ${price:g}/node-hour"
        if price is not None
        else f"cost not estimated (no {PRICE_VARIABLE})"
    )
    return (
        f"finbatch: {m.job} run {run_id} on queue {m.queue}: {m.duration_s:,.1f} s on "
        f"{m.nodes} node(s) = {node_hours:.3f} node-hours, {cost}; {m.rows_read:,} rows / "
        f"{m.bytes_read:,} bytes read, {m.tasks:,} tasks, {m.workers} workers, "
        f"{m.nodes_lost} nodes lost"
    )

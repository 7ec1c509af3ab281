"""After ``batch run`` committed a job: the main node publishes its metrics and summary line.

Only the main node (or a single-node job) publishes; an MNP child's ``batch run`` ends when the
main node does and has nothing to report. Publishing never fails the job: the run is already
committed, so a refused PutMetricData or SNS publish is logged and the exit code stays 0.
"""

from __future__ import annotations

import logging
import os
import shlex
import time
from collections.abc import Mapping, Sequence

from analytics.errors import FinbatchError
from analytics.run.folder import RunFolder, shard_index, shard_url
from finbatch.batch.gateway import BatchGateway
from finbatch.batch.metrics import (
    MODE_VARIABLE,
    JobMetrics,
    emf_line,
    job_metrics,
    metric_data,
    node_price,
    rows_in,
    summary_line,
)

log = logging.getLogger(__name__)
#: An SNS topic ARN that also receives the summary line (the stack's summary topic, never the
#: failure alerts' topic).
TOPIC_VARIABLE = "FINBATCH_SUMMARY_TOPIC"


def _run_folder(argv: Sequence[str], env: Mapping[str, str]) -> str:
    """The folder the job committed to: ``--output``, or a backtest shard's own folder."""
    output = argv[list(argv).index("--output") + 1]
    words = [w for arg in argv for w in (shlex.split(arg) if " " in arg else [arg])]
    if "--shard" in words:
        return shard_url(output, *shard_index(words[words.index("--shard") + 1], env))
    return output


def _run_id(argv: Sequence[str], env: Mapping[str, str]) -> str | None:
    """The run id this process ran: ``--run-id``, else the Batch job's; None when neither is
    known (a timestamp taken when the run started)."""
    words = [w for arg in argv for w in (shlex.split(arg) if " " in arg else [arg])]
    if "--run-id" in words:
        return words[words.index("--run-id") + 1]
    return env.get("AWS_BATCH_JOB_ID", "").split("#", 1)[0] or None


def publish_job_metrics(
    argv: Sequence[str],
    env: Mapping[str, str] = os.environ,
    gateway: BatchGateway | None = None,
) -> JobMetrics | None:
    """Publish the committed run's metrics (EMF line, or PutMetricData) and summary line."""
    node, main = env.get("AWS_BATCH_JOB_NODE_INDEX"), env.get("AWS_BATCH_JOB_MAIN_NODE_INDEX")
    if node is not None and main is not None and node != main:
        return None  # an MNP child: the main node reports the job
    found = RunFolder(_run_folder(argv, env)).read_manifest()
    manifest = found.to_json() if found is not None else None
    ran = _run_id(argv, env)
    if manifest is None or (ran is not None and manifest.get("run_id") != ran):
        return None  # nothing committed, or an earlier submission's run (published then)
    files = [f["url"] for d in manifest.get("inputs", {}).values() for f in d.get("files", [])]
    m = job_metrics(manifest, env, rows_in(files))
    line = summary_line(m, node_price(env), str(manifest.get("run_id")))
    mode = env.get(MODE_VARIABLE, "emf")
    try:
        if mode == "emf":
            print(emf_line(m, int(time.time() * 1000)), flush=True)
        elif mode == "cloudwatch":
            (gateway or BatchGateway()).put_metric_data(metric_data(m))
        topic = env.get(TOPIC_VARIABLE)
        if topic:
            (gateway or BatchGateway()).publish(topic, f"finbatch {m.job} finished", line)
    except FinbatchError as err:
        log.warning("job metrics not published: %s", err)
    print(line, flush=True)
    return m

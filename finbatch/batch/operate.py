"""``batch submit``, ``status``, ``logs``, ``cancel`` and ``list``: running jobs on AWS Batch.

Requests are built by :mod:`finbatch.batch.submit` (pure), sized by :mod:`finbatch.batch.sizing`
and checked by :mod:`finbatch.batch.checks`; AWS is reached only through
:class:`~finbatch.batch.gateway.BatchGateway`. ``submit`` splits its own options from the job's
(``batch submit backtest --input ... --strategy ... --queue Q --nodes auto``): what it does not
know goes to the job, which checks it before anything is sent.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import sys
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from analytics.errors import EXIT_FAILURE, EXIT_OK, InputError
from finbatch.batch import checks, sizing
from finbatch.batch import submit as build
from finbatch.parsing import Parser

if TYPE_CHECKING:
    from finbatch.batch.gateway import BatchGateway

DONE = ("SUCCEEDED", "FAILED")
STATUSES = ("SUBMITTED", "PENDING", "RUNNABLE", "STARTING", "RUNNING", *DONE)
DEFAULT_LOG_GROUP = "/aws/batch/job"
DEFAULT_MAX_NODES = 16


def _gateway(args: argparse.Namespace) -> BatchGateway:
    from finbatch.batch.gateway import BatchGateway

    return BatchGateway(region=args.region, profile=args.profile)


def _aws_options(p: argparse.ArgumentParser | argparse._ArgumentGroup) -> None:
    p.add_argument("--region", help="AWS region (default: the standard AWS configuration)")
    p.add_argument("--profile", help="AWS profile (default: the standard AWS configuration)")


def console_link(region: str, job_id: str) -> str:
    return (
        f"https://{region}.console.aws.amazon.com/batch/home?region={region}#jobs/detail/{job_id}"
    )


def _nodes(text: str) -> int | str:
    if text == "auto":
        return text
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a node count (N >= 1) or auto")
    return int(text)


def submit_options() -> Parser:
    """``batch submit``'s own options (the rest of the command line is the job's). The
    ``submit`` subcommand's parser has them too (``--help`` lists them)."""
    p = Parser(prog="finbatch batch submit JOB", add_help=False)
    own = p.add_argument_group("submit's own options (every other option goes to the job)")
    add = own.add_argument
    add("--queue", metavar="Q", help="the job queue (required)")
    add(
        "--nodes",
        type=_nodes,
        metavar="N|auto",
        help="default: one node; N >= 2 or auto: the multi-node definition resized",
    )
    add(
        "--max-nodes",
        type=int,
        default=DEFAULT_MAX_NODES,
        metavar="M",
        help="auto's cap (default: %(default)s)",
    )
    add(
        "--spot-shards",
        type=int,
        metavar="K",
        help="a backtest: K Spot shards (an array job) and a merge job after them",
    )
    add("--wait", action="store_true", help="poll to the end; exit with the job's outcome")
    add("--follow", action="store_true", help="stream the main node's log (and wait)")
    add("--node", type=int, default=0, metavar="I", help="--follow node I's log instead")
    add("--dry-run", action="store_true", help="print the requests, send nothing")
    add(
        "--idempotency-key",
        metavar="K",
        help="the same job, parameters and key run once (a resubmission finds the job)",
    )
    add(
        "--definition",
        default="finbatch",
        metavar="NAME",
        help="the job definition (default: %(default)s)",
    )
    add("--node-price", type=float, metavar="USD", help="per node-hour, for the cost estimate")
    add(
        "--vcpus",
        type=int,
        default=16,
        metavar="V",
        help="the definition's vCPUs (checks) (default: %(default)s)",
    )
    add(
        "--memory",
        type=int,
        default=28_000,
        metavar="MiB",
        help="the definition's memory (default: %(default)s)",
    )
    add(
        "--bytes-per-node",
        type=int,
        default=sizing.SizingRule.bytes_per_node,
        metavar="B",
        help="--nodes auto: input bytes per node (default: %(default)s)",
    )
    add(
        "--backtests-per-node",
        type=int,
        default=sizing.SizingRule.backtests_per_node,
        metavar="N",
        help="--nodes auto: backtest simulations per node (default: %(default)s)",
    )
    add(
        "--poll",
        type=float,
        default=15.0,
        metavar="SECONDS",
        help="--wait's poll interval (default: %(default)s)",
    )
    add("--stamp", default=None, help=argparse.SUPPRESS)
    _aws_options(own)
    return p


SUBMIT_HELP = (
    "Submit JOB with its options to AWS Batch. The options below are submit's own, before or "
    "after JOB; every other option goes to the job, which checks them before anything is sent."
)


def _refuse_unknown(parser: Any, job: str, argv: Sequence[str]) -> None:
    """An option neither submit nor the job knows, with the closest of either's."""
    from analytics import jobs
    from finbatch.parsing import job_parser, suggestion

    known = [*job_parser(jobs.get(job)).options(), *parser.options()]
    for word in argv:
        flag = word.split("=", 1)[0]
        if flag.startswith("--") and flag not in known:
            parser.error(f"unknown option {word}{suggestion(flag, known)}")


def _check_job(job: str, argv: Sequence[str]) -> None:
    """Parse the job's command line as the container will, before sending anything."""
    from analytics import jobs
    from finbatch.parsing import job_parser

    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        try:
            job_parser(jobs.get(job)).parse_args(list(argv))
        except SystemExit as exit_:
            if exit_.code:
                raise InputError(f"the job's options: {err.getvalue().strip()}") from None


def _shape(opts: argparse.Namespace, job: str, argv: Sequence[str]) -> tuple[str, int]:
    """("spot", K), ("multinode", nodes) or ("single", 1); sizes ``--nodes auto``."""
    if opts.spot_shards is not None:
        units = sizing.units(job, argv)  # more shards than combinations leave some empty
        if units and opts.spot_shards > units:
            raise InputError(
                f"{opts.spot_shards} shards for {units} combinations: some would be empty; "
                f"use at most {units} shards"
            )
        return "spot", opts.spot_shards
    if opts.nodes in (None, 1):
        return "single", 1
    if opts.nodes != "auto":
        return "multinode", int(opts.nodes)
    params = build.parameters(job, argv)
    size, min_nodes = sizing.measure(job, params["input"], argv)
    rule = sizing.SizingRule(opts.bytes_per_node, opts.backtests_per_node)
    decision = sizing.decide(size, rule, min_nodes, opts.max_nodes)
    print(decision.reason, file=sys.stderr, flush=True)
    return "multinode", decision.nodes


def build_requests(
    job: str, argv: Sequence[str], opts: argparse.Namespace
) -> tuple[str, list[dict[str, Any]]]:
    """The shape and the SubmitJob requests of ``batch submit`` (no Batch call)."""
    params = build.parameters(job, argv)
    target = build.Target(opts.queue, opts.definition, opts.node_price, opts.idempotency_key)
    shape, count = _shape(opts, job, argv)
    stamp = opts.stamp or time.strftime("%Y%m%dT%H%M%S", time.gmtime())
    name = build.job_name(params, opts.idempotency_key, stamp)
    if shape == "spot":
        array, merge = build.spot_fanout_requests(name, params, target, count)
        requests = [array, merge]
    elif shape == "multinode":
        requests = [build.multinode_request(name, params, target, count)]
    else:
        requests = [build.single_node_request(name, params, target)]
    for request in requests:
        checks.check_overrides(request)
    return shape, requests


def _preflight(
    gw: BatchGateway,
    opts: argparse.Namespace,
    shape: str,
    nodes: int,
    job: str,
    argv: Sequence[str],
) -> None:
    queue = checks.check_queue(opts.queue, gw.describe_job_queue(opts.queue))
    names = [c["computeEnvironment"] for c in queue.get("computeEnvironmentOrder", [])]
    envs = [checks.environment(ce) for ce in gw.describe_compute_environments(names)]
    if shape == "multinode":
        checks.check_multinode(opts.queue, envs)
        checks.check_capacity(nodes, opts.vcpus, envs)
    exact = sorted({t for e in envs for t in e.instance_types if "." in t})
    types = [checks.instance_type(t) for t in gw.instance_types(exact)] if exact else []
    checks.check_fits(opts.vcpus, opts.memory, envs, types)
    if opts.nodes != "auto":  # auto already listed the input
        params = build.parameters(job, argv)
        sizing.measure(job, params["input"], argv)


def _existing(gw: BatchGateway, queue: str, name: str) -> dict[str, Any] | None:
    """A job of this name that has not failed (an idempotent resubmission finds it)."""
    found = gw.list_jobs({"jobQueue": queue, "filters": [{"name": "JOB_NAME", "values": [name]}]})
    alive = [j for j in found if j.get("jobName") == name and j.get("status") != "FAILED"]
    return max(alive, key=lambda j: j.get("createdAt", 0)) if alive else None


def _send(gw: BatchGateway, request: dict[str, Any], key: str | None) -> str:
    if key:
        found = _existing(gw, request["jobQueue"], request["jobName"])
        if found is not None:
            print(
                f"already submitted with this --idempotency-key: {found['jobId']} "
                f"({found.get('status')}); not submitted again",
                flush=True,
            )
            return str(found["jobId"])
    job_id = str(gw.submit_job(request)["jobId"])
    print(f"submitted {request['jobName']}: {job_id}", flush=True)
    return job_id


def _submit(args: argparse.Namespace, run_job: Any) -> int:
    # submit's options before JOB are parsed already; those after it are among the job's.
    parser = submit_options()
    opts, argv = parser.parse_known_args(args.job_args, namespace=argparse.Namespace(**vars(args)))
    _refuse_unknown(parser, args.submit_job, argv)
    if opts.queue is None:
        parser.error("the following arguments are required: --queue")
    _check_job(args.submit_job, argv)
    shape, requests = build_requests(args.submit_job, argv, opts)
    nodes = requests[0].get("nodeOverrides", {}).get("numNodes", 1)
    if opts.dry_run:
        print(json.dumps(requests if len(requests) > 1 else requests[0], indent=2), flush=True)
        return EXIT_OK
    gw = _gateway(opts)
    _preflight(gw, opts, shape, nodes, args.submit_job, argv)
    job_id = _send(gw, requests[0], opts.idempotency_key)
    if shape == "spot":
        print(f"shards: {job_id}  {console_link(gw.region, job_id)}", flush=True)
        job_id = _send(gw, build.depends_on(requests[1], job_id), opts.idempotency_key)
        print(f"merge:  {job_id}  {console_link(gw.region, job_id)}", flush=True)
    else:
        print(f"{job_id}  {console_link(gw.region, job_id)}", flush=True)
    if opts.follow:
        follow(gw, job_id, opts.node, opts.poll)
    if opts.wait or opts.follow:
        return wait(gw, job_id, opts.poll)
    return EXIT_OK


def describe(gw: BatchGateway, job_id: str) -> dict[str, Any]:
    jobs = gw.describe_jobs([job_id])
    if not jobs:
        raise InputError(f"no AWS Batch job {job_id!r} in {gw.region}: check the id and region")
    return jobs[0]


def progress_line(job: dict[str, Any], now_ms: int) -> str:
    since = job.get("startedAt") or job.get("createdAt") or now_ms
    seconds = (now_ms - since) / 1000
    line = f"{job['jobId']} {job.get('jobName', '')}: {job['status']} ({seconds:,.0f} s)"
    summary = job.get("arrayProperties", {}).get("statusSummary")
    if summary:
        line += " " + ", ".join(f"{k} {v}" for k, v in sorted(summary.items()) if v)
    if job.get("statusReason"):
        line += f": {job['statusReason']}"
    return line


def wait(gw: BatchGateway, job_id: str, poll: float) -> int:
    """Poll until the job ends, printing a line when its status changes; its outcome."""
    last = ""
    while True:
        job = describe(gw, job_id)
        line = progress_line(job, int(time.time() * 1000))
        if job["status"] != last:
            print(line, flush=True)
            last = job["status"]
        if job["status"] in DONE:
            return EXIT_OK if job["status"] == "SUCCEEDED" else EXIT_FAILURE
        time.sleep(poll)


def log_location(job: dict[str, Any]) -> tuple[str, str] | None:
    """(log group, stream) of a job (or an MNP node's ``ID#i`` job), None before it starts."""
    container = job.get("container", {})
    stream = container.get("logStreamName")
    if not stream:
        return None
    options = container.get("logConfiguration", {}).get("options", {})
    return options.get("awslogs-group", DEFAULT_LOG_GROUP), stream


def _log_target(gw: BatchGateway, job: dict[str, Any], node: int) -> dict[str, Any]:
    """The job whose log to read: node ``node`` (``ID#node``) of a multi-node job, else itself
    (also when the node is not described, as moto does)."""
    if "nodeProperties" not in job:
        return job
    nodes = gw.describe_jobs([f"{job['jobId']}#{node}"])
    if nodes:
        return nodes[0]
    if node == job["nodeProperties"].get("mainNode", 0):
        return job
    raise InputError(f"job {job['jobId']} has no node {node} (nodes: 0 to N-1)")


def follow(gw: BatchGateway, job_id: str, node: int, poll: float) -> None:
    """Print the node's log as it comes, until the job has ended and the log is drained."""
    token: str | None = None
    while True:
        job = describe(gw, job_id)
        target = _log_target(gw, job, node)
        where = log_location(target)
        if where is not None:
            while True:
                events, nxt = gw.log_events(*where, token)
                for event in events:
                    print(event["message"], flush=True)
                if not events or nxt == token:
                    break
                token = nxt
        if job["status"] in DONE:
            return
        time.sleep(poll)


def _status(args: argparse.Namespace, run_job: Any) -> int:
    gw = _gateway(args)
    job = describe(gw, args.job_id)
    print(progress_line(job, int(time.time() * 1000)), flush=True)
    nodes = job.get("nodeProperties", {}).get("numNodes")
    if nodes:
        print(f"nodes: {nodes}", flush=True)
    print(console_link(gw.region, args.job_id), flush=True)
    return EXIT_OK


def _logs(args: argparse.Namespace, run_job: Any) -> int:
    gw = _gateway(args)
    job = describe(gw, args.job_id)
    target = _log_target(gw, job, args.node)
    where = log_location(target)
    if where is None:
        raise InputError(f"job {args.job_id} has no log yet ({job['status']})")
    token: str | None = None
    while True:
        events, nxt = gw.log_events(*where, token)
        for event in events:
            print(event["message"], flush=True)
        if not events or nxt == token:
            return EXIT_OK
        token = nxt


def _cancel(args: argparse.Namespace, run_job: Any) -> int:
    gw = _gateway(args)
    job = describe(gw, args.job_id)
    gw.terminate_job(args.job_id, args.reason)
    print(f"cancelled {args.job_id} (was {job['status']})", flush=True)
    return EXIT_OK


def _list(args: argparse.Namespace, run_job: Any) -> int:
    gw = _gateway(args)
    queues = [args.queue] if args.queue else gw.job_queue_names()
    statuses = [args.status] if args.status else list(STATUSES)
    for queue in queues:
        for status in statuses:
            for job in gw.list_jobs({"jobQueue": queue, "jobStatus": status}):
                print(f"{job['jobId']}  {job['status']:<9}  {queue}  {job['jobName']}", flush=True)
    return EXIT_OK


def add_operate_parsers(commands: Any) -> None:
    """Add submit, status, logs, cancel and list to the ``batch`` subcommands."""
    p = commands.add_parser(
        "submit",
        help="submit a job to AWS Batch",
        description=SUBMIT_HELP,
        parents=[submit_options()],
    )
    p.add_argument("submit_job", metavar="JOB", help="the job (finbatch --help lists them)")
    p.add_argument(
        "job_args", nargs=argparse.REMAINDER, metavar="OPTIONS", help="the job's options"
    )
    p.set_defaults(batch_handler=_submit)
    for name, handler, helptext in (
        ("status", _status, "a job's status"),
        ("logs", _logs, "a job's log (the main node's, or --node i)"),
        ("cancel", _cancel, "cancel (or stop) a job"),
    ):
        q = commands.add_parser(name, help=helptext, description=helptext)
        q.add_argument("job_id", metavar="ID", help="the AWS Batch job id")
        if name == "logs":
            q.add_argument(
                "--node", type=int, default=0, metavar="I", help="a multi-node job's node I"
            )
        if name == "cancel":
            q.add_argument(
                "--reason",
                default="cancelled with finbatch batch cancel",
                help="recorded with the job (default: %(default)s)",
            )
        _aws_options(q)
        q.set_defaults(batch_handler=handler)
    q = commands.add_parser("list", help="list jobs", description="List jobs by queue and status.")
    q.add_argument("--queue", metavar="Q", help="default: every queue")
    q.add_argument("--status", choices=STATUSES, metavar="S", help="default: every status")
    _aws_options(q)
    q.set_defaults(batch_handler=_list)

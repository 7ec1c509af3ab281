"""finbatch's command line and the container ENTRYPOINT: parse, settings, cluster, job, exit code.

Exit codes: 0 success, 2 bad arguments or bad input, 1 any other failure.
"""

from __future__ import annotations

import argparse
import datetime as dt
import logging
import os
import signal
import sys
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from analytics.arguments import iso_date, nonnegative_int, positive_int, symbol_list
from analytics.errors import EXIT_FAILURE, EXIT_OK, FinbatchError, InputError
from analytics.jobs import Job, RunSettings, execute, prepare_settings
from analytics.sessions import NothingToDo
from cluster.batch.cli import add_batch_parser, run_batch
from cluster.context import Role, detect
from cluster.local import ClusterSpec, describe
from cluster.runner import ClusterOptions, mnp_options, open_client, run_worker_node

if TYPE_CHECKING:
    from analytics.delivery import DbTarget

log = logging.getLogger("finbatch")


def _jobs() -> dict[str, Job]:
    from analytics.backtest.job import Backtest
    from analytics.market_performance import MarketPerformance
    from analytics.risk import Risk
    from analytics.tca.job import ExecutionReport, Tca

    jobs: tuple[Job, ...] = (MarketPerformance(), Risk(), Tca(), ExecutionReport(), Backtest())
    return {job.name: job for job in jobs}


def default_run_id(env: dict[str, str] | os._Environ[str] = os.environ) -> str:
    """``AWS_BATCH_JOB_ID`` without its ``#node`` suffix, else a UTC timestamp."""
    job_id = env.get("AWS_BATCH_JOB_ID", "").split("#", 1)[0]
    return job_id or dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")


# --------------------------------------------------------------------------------------------
# Parser


def _common_options() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    data = common.add_argument_group("data")
    data.add_argument(
        "--input", required=True, metavar="URL", help="dataset root (folder or s3://)"
    )
    data.add_argument("--output", required=True, metavar="URL", help="this run's output folder")
    data.add_argument("--start", type=iso_date, metavar="YYYY-MM-DD", help="first date (inclusive)")
    data.add_argument("--end", type=iso_date, metavar="YYYY-MM-DD", help="last date (inclusive)")
    data.add_argument("--symbols", type=symbol_list, metavar="A,B,...", help="only these symbols")
    data.add_argument(
        "--on-bad-rows",
        choices=["fail", "skip"],
        default="fail",
        help="a row with a missing, NaN, infinite or out-of-range value or an unknown side: "
        "fail the run (default), or skip the row and list it in the manifest's summary",
    )
    run = common.add_argument_group("run")
    run.add_argument(
        "--run-id", help="run identifier (default: AWS_BATCH_JOB_ID, else a UTC timestamp)"
    )
    run.add_argument(
        "--overwrite",
        action="store_true",
        help="replace another run's committed results in --output (a retry of the same run id "
        "always replaces its own)",
    )
    run.add_argument(
        "--resume",
        action="store_true",
        help="reuse what an interrupted run of the same --run-id finished in --output "
        "(automatic on an AWS Batch retry, AWS_BATCH_JOB_ATTEMPT > 1)",
    )
    run.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    cluster = common.add_argument_group("cluster")
    cluster.add_argument(
        "--workers",
        type=positive_int,
        metavar="N",
        help="LocalCluster workers (default: one per CPU)",
    )
    cluster.add_argument(
        "--threads-per-worker",
        type=positive_int,
        metavar="N",
        help="threads per worker (default 1)",
    )
    cluster.add_argument(
        "--scheduler", metavar="ADDRESS", help="use this running Dask scheduler (tcp:// or tls://)"
    )
    db = common.add_argument_group("database (results also loaded into PostgreSQL / RDS)")
    db.add_argument(
        "--db-url",
        metavar="URL",
        help="postgresql://USER@HOST:PORT/DB?sslmode=require (default: $FINBATCH_DB_URL; the "
        "password may come from PGPASSWORD or --db-secret)",
    )
    db.add_argument(
        "--db-schema",
        default="finbatch",
        metavar="NAME",
        help="schema of the result tables, created if missing (default finbatch)",
    )
    db.add_argument(
        "--db-secret",
        metavar="NAME",
        help="AWS Secrets Manager secret (name or ARN) holding the RDS credentials",
    )
    mnp = common.add_argument_group("AWS Batch multi-node parallel")
    mnp.add_argument(
        "--wait-for-nodes",
        type=positive_int,
        default=600,
        metavar="SECONDS",
        help="main node: how long to wait for the nodes to join (default 600)",
    )
    mnp.add_argument(
        "--min-nodes",
        type=positive_int,
        metavar="K",
        help="main node: start once K nodes joined, and fail below K (default: all nodes)",
    )
    mnp.add_argument(
        "--death-timeout",
        type=positive_int,
        default=900,
        metavar="SECONDS",
        help="child node: how long to look for the main node's scheduler (default 900)",
    )
    mnp.add_argument(
        "--insecure",
        action="store_true",
        help="plain TCP between the nodes instead of mutual TLS (not recommended)",
    )
    return common


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="finbatch",
        description="Batch market analytics as Dask jobs over partitioned Parquet "
        "(a local folder or S3), on a LocalCluster, an existing cluster or AWS Batch.",
        epilog="Exit codes: 0 success, 2 bad arguments or bad input, 1 any other failure.",
    )
    sub = parser.add_subparsers(dest="job", metavar="JOB", required=True)

    gen = sub.add_parser(
        "generate-data",
        help="write a synthetic market (prices, positions, bars, orders, fills)",
        description="Write a synthetic but realistic market in finbatch's input layout.",
    )
    gen.add_argument("--output", required=True, metavar="URL", help="dataset root to write")
    gen.add_argument("--start", required=True, type=iso_date, metavar="YYYY-MM-DD")
    gen.add_argument("--end", required=True, type=iso_date, metavar="YYYY-MM-DD")
    gen.add_argument(
        "--symbols",
        required=True,
        type=positive_int,
        metavar="N",
        help="number of symbols (plus SPX)",
    )
    gen.add_argument(
        "--intraday-symbols",
        type=nonnegative_int,
        default=3,
        metavar="K",
        help="symbols with 1-minute bars, orders and fills (default 3)",
    )
    gen.add_argument(
        "--intraday-days",
        type=nonnegative_int,
        default=20,
        metavar="D",
        help="intraday data for the last D sessions of the range (default 20; 0: all)",
    )
    gen.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    gen.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"])

    add_batch_parser(sub)

    rep = sub.add_parser(
        "report",
        help="write report.html again from a committed run's outputs",
        description="Regenerate report.html in a committed run's output folder from its "
        "_manifest.json and tables (and, for market-performance, a few symbols' input prices).",
    )
    rep.add_argument("--output", required=True, metavar="URL", help="the run's output folder")
    rep.add_argument(
        "--input", metavar="URL", help="the run's dataset root, if it moved since the run"
    )
    rep.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"])

    common = _common_options()
    for job in _jobs().values():
        p = sub.add_parser(job.name, parents=[common], help=job.help, description=job.help)
        job.add_arguments(p.add_argument_group(f"{job.name} options"))  # type: ignore[arg-type]
    return parser


# --------------------------------------------------------------------------------------------
# Running


def _generate(args: argparse.Namespace) -> int:
    from analytics.generate import generate_market

    t0 = time.perf_counter()
    summary = generate_market(
        args.output,
        args.start,
        args.end,
        args.symbols,
        intraday_symbols=args.intraday_symbols,
        intraday_days=args.intraday_days,
        seed=args.seed,
        log=log.info,
    )
    rows = ", ".join(f"{name} {count:,}" for name, count in summary.rows.items())
    print(f"generated {args.output} in {time.perf_counter() - t0:.1f} s: {rows}", flush=True)
    return EXIT_OK


def _settings(args: argparse.Namespace, *, resume: bool = False) -> RunSettings:
    if args.start and args.end and args.start > args.end:
        raise InputError(f"--start {args.start} is after --end {args.end}")
    return RunSettings(
        job=args.job,
        input_url=args.input,
        output_url=args.output,
        run_id=args.run_id or default_run_id(),
        start=args.start,
        end=args.end,
        symbols=args.symbols,
        overwrite=args.overwrite,
        resume=resume or args.resume,
    )


def _parameters(args: argparse.Namespace) -> dict[str, Any]:
    skip = {"log_level", "resume"}  # how a run was started, not what it computes
    params = {k: v for k, v in sorted(vars(args).items()) if k not in skip}
    if params.get("db_url"):  # the manifest is no place for a password
        from analytics.sink import redact

        params["db_url"] = redact(params["db_url"])
    return params


class Terminated(BaseException):
    """SIGTERM (an AWS Batch timeout or cancel): unwind promptly, exit non-zero."""


def _on_sigterm(signum: int, frame: object) -> None:
    raise Terminated


def _cluster_options(args: argparse.Namespace) -> ClusterOptions:
    mnp = mnp_options(
        os.environ,
        args.output,
        wait_for_nodes=float(args.wait_for_nodes),
        min_nodes=args.min_nodes,
        death_timeout=float(args.death_timeout),
        insecure=args.insecure,
    )
    return ClusterOptions(ClusterSpec(args.workers, args.threads_per_worker), mnp)


def _run_job(job: Job, args: argparse.Namespace) -> int:
    ctx = detect(os.environ, args.scheduler)
    options = _cluster_options(args)
    if ctx.role is Role.MNP_CHILD:
        log.info("node %d of %d: worker for job %s", ctx.node_index, ctx.num_nodes, ctx.job_id)
        return run_worker_node(ctx, options, os.environ)
    # A Batch retry (same job id, so same run id) resumes what the lost attempt finished.
    settings = prepare_settings(job, args, _settings(args, resume=ctx.attempt > 1))
    target = _db_target(args)  # a bad URL or an unreadable secret fails before the job runs
    signal.signal(signal.SIGTERM, _on_sigterm)
    t0 = time.perf_counter()
    with open_client(ctx, options, os.environ) as client:
        info = describe(client)
        print(
            f"{job.name}: run {settings.run_id} ({ctx.role.value}) on {info['workers']} workers / "
            f"{info['threads']} threads; dashboard {client.dashboard_link}",
            flush=True,
        )
        manifest = execute(
            job, client, settings, args, _parameters(args), cluster_info=lambda: describe(client)
        )
    rows = ", ".join(f"{t} {v['rows']:,} rows" for t, v in manifest["outputs"].items())
    print(
        f"{job.name}: committed {manifest['manifest_url']} ({rows}) "
        f"in {time.perf_counter() - t0:.1f} s",
        flush=True,
    )
    return _deliver(job.name, args.output, target)


def _db_target(args: argparse.Namespace) -> DbTarget | None:
    """The database to load, from --db-url / $FINBATCH_DB_URL and --db-secret; None if neither."""
    url = args.db_url or os.environ.get("FINBATCH_DB_URL") or None
    if not url and not args.db_secret:
        return None
    from analytics.delivery import DbTarget
    from analytics.sink import SinkError, connection_params

    secret = None
    if args.db_secret:
        from cluster.secrets import read_secret

        secret = read_secret(args.db_secret)
    try:
        return DbTarget(connection_params(url, secret), args.db_schema)
    except SinkError as err:
        raise InputError(str(err)) from err


def _deliver(name: str, output: str, target: DbTarget | None) -> int:
    """After the commit: write report.html, then load the database. The run stays committed
    whatever fails here; a failure is reported and makes the exit code 1."""
    from analytics.delivery import load_database, write_report
    from analytics.report.run import RunView

    view = RunView.load(output)
    failures = []
    try:
        print(f"{name}: report {write_report(view)}", flush=True)
    except Exception as err:
        log.exception("report failed")
        failures.append(f"the report was not written: {err}")
    if target is not None:
        try:
            loaded = load_database(view, target)
        except FinbatchError as err:
            failures.append(str(err))
        except Exception as err:
            log.exception("database load failed")
            failures.append(f"the database load failed: {type(err).__name__}: {err}")
        else:
            if loaded is not None:
                rows = ", ".join(f"{target.schema}.{t} {n:,} rows" for t, n in loaded.rows.items())
                print(f"{name}: loaded {rows} in {loaded.seconds:.1f} s", flush=True)
    for failure in failures:
        print(f"finbatch: error: {failure}", file=sys.stderr, flush=True)
    if failures:
        print(
            f"finbatch: the run {view.run_id} stays committed in {output}",
            file=sys.stderr,
            flush=True,
        )
        return EXIT_FAILURE
    return EXIT_OK


def _report(args: argparse.Namespace) -> int:
    from analytics.delivery import write_report
    from analytics.report.run import RunView

    view = RunView.load(args.output, args.input)
    print(f"report {write_report(view)} (job {view.job}, run {view.run_id})", flush=True)
    return EXIT_OK


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)  # exits 2 with a usage message on bad arguments
    if args.job == "batch":  # its `run` calls main() again with the job's own arguments
        return run_batch(args, main)
    logging.basicConfig(
        level=args.log_level,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    try:
        if args.job == "generate-data":
            return _generate(args)
        if args.job == "report":
            return _report(args)
        return _run_job(_jobs()[args.job], args)
    except NothingToDo as err:  # a schedule firing on a day with no session to process
        print(f"finbatch: nothing to do: {err}", flush=True)
        return EXIT_OK
    except FinbatchError as err:
        print(f"finbatch: error: {err}", file=sys.stderr, flush=True)
        return err.exit_code
    except KeyboardInterrupt:
        print("finbatch: interrupted", file=sys.stderr, flush=True)
        return EXIT_FAILURE
    except Terminated:
        print("finbatch: terminated by SIGTERM", file=sys.stderr, flush=True)
        return EXIT_FAILURE
    except Exception as err:  # the last line of defence: a message, then the details
        log.exception("unexpected failure")
        print(f"finbatch: failed: {type(err).__name__}: {err}", file=sys.stderr, flush=True)
        return EXIT_FAILURE


if __name__ == "__main__":
    sys.exit(main())

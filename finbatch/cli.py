"""finbatch's command line (the container's ENTRYPOINT): parse, run, exit code.

``finbatch JOB [options]`` runs a job of the registry (:mod:`analytics.jobs`); ``generate-data``,
``demo``, ``report`` and ``batch`` are the tools around them. Only the chosen command's parser
is built, and heavy libraries are imported only once a job runs, so ``--help`` and argument
errors are instant.

Exit codes: 0 success, 2 bad arguments or bad input, 75 storage or the database kept failing past
their own retries (AWS Batch retries it), 1 any other failure.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from collections.abc import Sequence
from typing import Any

from analytics import jobs
from analytics.errors import EXIT_FAILURE, EXIT_OK, EXIT_TEMPFAIL, FinbatchError
from analytics.jobs.contract import JobSpec, RunSettings
from analytics.options import argtype, iso_date, nonnegative_int, positive_int
from analytics.version import code_version
from finbatch.parsing import job_parser, log_level, new_parser
from finbatch.settings import ClusterSettings, DbSettings

log = logging.getLogger("finbatch")
TOOLS = {
    "generate-data": "write a synthetic market (prices, positions, bars, orders, fills)",
    "demo": "generate a small market under ./demo and run market-performance on it",
    "report": "write report.html again from a committed run's outputs",
    "batch": "AWS Batch: job definitions, their command, and submitting and operating jobs",
}


def top_parser() -> argparse.ArgumentParser:
    """``finbatch --help``: the commands, each with one line (their options are not built)."""
    parser = new_parser(
        "finbatch",
        "Batch market analytics as Dask jobs over partitioned Parquet (a local folder or S3), "
        "on a LocalCluster, an existing cluster or AWS Batch.",
    )
    parser.add_argument(
        "--version",
        action="version",
        version=f"finbatch {code_version()}",
        help="print the version (the package's and the commit's) and exit",
    )
    sub = parser.add_subparsers(dest="command", metavar="JOB", required=True)
    for spec in jobs.jobs().values():
        sub.add_parser(spec.name, help=spec.help, add_help=False)
    for name, text in TOOLS.items():
        sub.add_parser(name, help=text, add_help=False)
    return parser


class _RenamedCount(argparse.Action):
    """``generate-data --symbols N``, the old spelling: every job's --symbols is a list."""

    def __call__(self, parser: argparse.ArgumentParser, *args: Any, **kwargs: Any) -> None:
        parser.error(
            "--symbols is a list of symbols in every job; generate-data takes a count: "
            "--n-symbols N"
        )


def _generate_parser() -> argparse.ArgumentParser:
    gen = new_parser(
        "finbatch generate-data", "Write a synthetic but realistic market in the input layout."
    )
    gen.add_argument("--output", required=True, metavar="URL", help="dataset root to write")
    gen.add_argument("--start", required=True, type=argtype(iso_date), metavar="YYYY-MM-DD")
    gen.add_argument("--end", required=True, type=argtype(iso_date), metavar="YYYY-MM-DD")
    gen.add_argument(
        "--n-symbols",
        required=True,
        type=argtype(positive_int),
        metavar="N",
        help="number of symbols (plus SPX)",
    )
    gen.add_argument("--symbols", action=_RenamedCount, help=argparse.SUPPRESS)
    gen.add_argument(
        "--intraday-symbols",
        type=argtype(nonnegative_int),
        default=3,
        metavar="K",
        help="symbols with 1-minute bars, orders and fills (default 3)",
    )
    gen.add_argument(
        "--intraday-days",
        type=argtype(nonnegative_int),
        default=20,
        metavar="D",
        help="intraday data for the last D sessions of the range (default 20; 0: all)",
    )
    gen.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    log_level(gen)
    return gen


def _report_parser() -> argparse.ArgumentParser:
    rep = new_parser(
        "finbatch report",
        "Regenerate report.html in a committed run's output folder from its _manifest.json and "
        "tables (and, for market-performance, a few symbols' input prices).",
    )
    rep.add_argument("--output", required=True, metavar="URL", help="the run's output folder")
    rep.add_argument("--input", metavar="URL", help="the run's dataset root, if it moved since")
    log_level(rep)
    return rep


def _demo_parser() -> argparse.ArgumentParser:
    demo = new_parser(
        "finbatch demo",
        "Generate a synthetic market (100 symbols, 2020-2024) under --folder and run "
        "market-performance on it end to end on a LocalCluster; prints where report.html is.",
    )
    demo.add_argument("--folder", default="demo", metavar="DIR", help="default ./demo")
    log_level(demo)
    return demo


# --------------------------------------------------------------------------------------------
# Commands


def _split(cls: type, values: dict[str, Any]) -> dict[str, Any]:
    import dataclasses

    names = {f.name for f in dataclasses.fields(cls)}
    return {k: values.pop(k) for k in list(values) if k in names}


def _run_job(spec: JobSpec, args: argparse.Namespace) -> int:
    from analytics.options import build
    from finbatch import runner

    values = {k: v for k, v in vars(args).items() if k not in ("log_level", "log_format")}
    settings = build(RunSettings, _split(RunSettings, values))
    cluster = build(ClusterSettings, _split(ClusterSettings, values))
    db = build(DbSettings, _split(DbSettings, values))
    options = build(spec.options, values)
    outcome = runner.run(spec, settings, options, cluster, db, say=_say)
    if outcome.worker_exit is None:
        runner.report_failures(outcome)
    return outcome.exit_code


def _say(text: str) -> None:
    print(text, flush=True)


def _generate(args: argparse.Namespace) -> int:
    from analytics.generate.market import generate_market

    t0 = time.perf_counter()
    summary = generate_market(
        args.output,
        args.start,
        args.end,
        args.n_symbols,
        intraday_symbols=args.intraday_symbols,
        intraday_days=args.intraday_days,
        seed=args.seed,
        log=log.info,
    )
    rows = ", ".join(f"{name} {count:,}" for name, count in summary.rows.items())
    print(f"generated {args.output} in {time.perf_counter() - t0:.1f} s: {rows}", flush=True)
    return EXIT_OK


def _report(args: argparse.Namespace) -> int:
    from analytics.report.page import write_report
    from analytics.run.committed import CommittedRun
    from finbatch.settings import recorded_defaults

    view = CommittedRun.load(args.output, args.input)
    url = write_report(view, recorded_defaults())
    print(f"report {url} (job {view.job}, run {view.run_id})", flush=True)
    return EXIT_OK


def _demo(args: argparse.Namespace) -> int:
    import datetime as dt
    import os

    data = os.path.join(args.folder, "data")
    if not os.path.exists(os.path.join(data, "prices")):
        code = main(
            [
                "generate-data",
                "--output",
                data,
                "--start",
                "2020-01-02",
                "--end",
                "2024-12-31",
                "--n-symbols",
                "100",
                "--log-level",
                args.log_level,
                *(["--log-format", args.log_format] if args.log_format else []),
            ]
        )
        if code:
            return code
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    output = os.path.join(args.folder, "runs", f"market-performance-{stamp}")
    code = main(
        [
            "market-performance",
            "--input",
            data,
            "--output",
            output,
            "--log-level",
            args.log_level,
            *(["--log-format", args.log_format] if args.log_format else []),
        ]
    )
    if code == EXIT_OK:
        print(
            f"demo: open {os.path.join(output, 'report.html')}; the table is "
            f"{os.path.join(output, 'metrics')}/ (pandas.read_parquet)",
            flush=True,
        )
    return code


def _batch(argv: Sequence[str]) -> int:
    from finbatch.batch.cli import batch_parser, run_batch

    return run_batch(batch_parser().parse_args(list(argv)), main)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    command = argv[0] if argv else ""
    if command == "batch":
        return _guarded(lambda: _batch(argv[1:]))
    registered = jobs.jobs()
    if command in registered:
        spec = registered[command]
        args = job_parser(spec).parse_args(argv[1:])
        _logging(args.log_level, args.log_format, spec.name)
        return _guarded(lambda: _run_job(spec, args))
    tools = {"generate-data": (_generate_parser, _generate), "report": (_report_parser, _report)}
    tools["demo"] = (_demo_parser, _demo)
    if command in tools:
        make, handler = tools[command]
        args = make().parse_args(argv[1:])
        _logging(args.log_level, args.log_format, command)
        return _guarded(lambda: handler(args))
    top_parser().parse_args(argv)  # --help, or a usage error naming the commands (exit 2)
    return EXIT_FAILURE


def _logging(level: str, chosen: str | None, job: str) -> None:
    from analytics.secrecy import RedactingFilter
    from finbatch import logs

    logs.configure(level, chosen)
    logs.set_context(job=job)
    for handler in logging.getLogger().handlers:
        if not any(isinstance(f, RedactingFilter) for f in handler.filters):
            handler.addFilter(RedactingFilter())


def _guarded(action: Any) -> int:
    """Run a command; map what it raises to a message on stderr and an exit code."""
    from analytics.errors import readable
    from analytics.secrecy import redact
    from finbatch.runner import Terminated

    try:
        code: int = action()
        return code
    except FinbatchError as err:
        if err.exit_code == EXIT_OK:  # nothing to do (a schedule firing on a day off)
            print(f"finbatch: nothing to do: {redact(err)}", flush=True)
            return EXIT_OK
        print(f"finbatch: error: {readable(redact(err))}", file=sys.stderr, flush=True)
        return err.exit_code
    except KeyboardInterrupt:
        print("finbatch: interrupted", file=sys.stderr, flush=True)
        return EXIT_FAILURE
    except Terminated:
        print("finbatch: terminated by SIGTERM", file=sys.stderr, flush=True)
        return EXIT_FAILURE
    except Exception as err:  # the last line of defence: a message, then the details
        from analytics.data.storage import is_transient

        if is_transient(err):  # e.g. a result part's upload that S3 kept refusing
            log.error("storage kept failing", exc_info=err)
            print(
                f"finbatch: error: storage kept failing after its retries ({type(err).__name__}: "
                f"{err}); the input may be fine: run the job again",
                file=sys.stderr,
                flush=True,
            )
            return EXIT_TEMPFAIL
        log.exception("unexpected failure")
        print(f"finbatch: failed: {type(err).__name__}: {redact(err)}", file=sys.stderr, flush=True)
        return EXIT_FAILURE

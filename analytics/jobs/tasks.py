"""How many tasks a job's graph may have: few enough that the scheduler keeps up.

A Dask scheduler handles one task at a time, for about ``TASK_OVERHEAD_S`` each (measured by
``bench/scale_model.py`` with no-op tasks through a real scheduler: 1 to 3 ms on this machine).
A job of ``work_s`` seconds of computing on ``threads`` threads in ``tasks`` equal tasks takes
about ``work_s / min(tasks, threads)`` seconds of wall time, while its scheduler is busy
``tasks x TASK_OVERHEAD_S`` seconds. :func:`task_cap` is the most tasks for which that busy
time stays within ``SCHEDULER_SHARE`` of the wall time::

    tasks <= threads:  tasks**2 x overhead / work_s <= share
                       ->  tasks <= sqrt(share x work_s / overhead)
    tasks >  threads:  tasks x threads x overhead / work_s <= share
                       ->  tasks <= share x work_s / (threads x overhead)

The jobs' own rules (tasks per thread, bytes per bucket, cells per task) give the count they
want; the cap lowers it when the cluster is wide and the work small, and never makes a task
larger than a job's memory bound. Each job estimates ``work_s`` from its input with its own
constant (seconds per input byte, per simulated cell), taken from ``docs/performance.md``. The
share is 0.25 so that an overhead twice the constant still leaves the scheduler under half busy.
:func:`buckets_within` applies the cap to a graph that cuts every file into symbol buckets.
"""

from __future__ import annotations

import math

#: Seconds of scheduler time per task: no-op tasks through a distributed scheduler took 0.85 ms
#: on this machine when quiet and 1.7 to 3.3 ms when busy (``bench/scale_model.py``).
TASK_OVERHEAD_S = 0.002
#: The largest share of the wall time the scheduler may be busy with the job's tasks.
SCHEDULER_SHARE = 0.25
#: The cap never goes below this many tasks: their quarter second of scheduling is less than a
#: job's fixed costs (start-up, listing, the manifest), and small runs keep their parallelism.
MIN_TASKS = 128
#: Seconds of computing per byte of ``prices`` input read, bucketed and reduced
#: (docs/performance.md: market-performance on 5,000 symbols x 20 years, 719 MB, in 10.5 s of
#: 2 cores, everything included): the work of a graph that reads prices into buckets.
SECONDS_PER_INPUT_BYTE = 3e-8
#: Input bytes of one bucket of symbols at most, when the cap asks for fewer buckets than the
#: jobs' own bytes per bucket give (about 4.6 M rows: a few hundred MiB of arrays in a task).
MAX_BYTES_PER_BUCKET = 128 * 2**20


def task_cap(
    work_s: float,
    threads: int,
    overhead_s: float = TASK_OVERHEAD_S,
    share: float = SCHEDULER_SHARE,
) -> int:
    """The most tasks for ``work_s`` seconds of computing on ``threads`` threads (at least
    ``MIN_TASKS``)."""
    threads = max(1, threads)
    few = math.floor(math.sqrt(share * max(0.0, work_s) / overhead_s))
    if few <= threads:
        return max(MIN_TASKS, few)
    return max(MIN_TASKS, threads, math.floor(share * work_s / (threads * overhead_s)))


def buckets_within(n: int, files: int, size: int, tasks: int) -> int:
    """At most ``n`` buckets, and at most ``tasks`` tasks for reading ``files`` files into
    them (each bucket is about ``files + 3`` tasks: its piece of each file, its merge and two
    small follow-ups), but never more than ``MAX_BYTES_PER_BUCKET`` of input per bucket."""
    return max(1, min(n, max(tasks // (files + 3), math.ceil(size / MAX_BYTES_PER_BUCKET))))

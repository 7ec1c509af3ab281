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
:func:`units_within` bounds the read units (``analytics/data/reads.py``: the planner's target grows
until there are no more), and :func:`buckets_within` applies the cap to a graph that cuts every
read unit into symbol buckets.
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


def fewest_buckets(size: int) -> int:
    """The fewest symbol buckets for ``size`` bytes of input: ``MAX_BYTES_PER_BUCKET`` each."""
    return max(1, math.ceil(size / MAX_BYTES_PER_BUCKET))


def units_within(size: int, threads: int, tasks_per_unit: int = 1) -> int:
    """The most read units for reading ``size`` bytes of ``prices`` on ``threads`` threads, when
    each unit brings ``tasks_per_unit`` tasks: the cap over them (at least one unit).

    A graph that cuts every unit into symbol buckets brings ``fewest_buckets(size) + 1`` tasks a
    unit (its read and its piece of each bucket), so the units leave room for the buckets that
    memory needs; a graph that reads units into one frame brings 1.
    """
    cap = task_cap(size * SECONDS_PER_INPUT_BYTE, threads)
    return max(1, cap // max(1, tasks_per_unit))


def buckets_within(n: int, units: int, size: int, tasks: int) -> int:
    """At most ``n`` buckets, and at most ``tasks`` tasks for reading ``units`` read units into
    them (each bucket is about ``units + 3`` tasks: its piece of each unit, its merge and two
    small follow-ups), but never more than ``MAX_BYTES_PER_BUCKET`` of input per bucket."""
    return max(1, min(n, max(tasks // (units + 3), fewest_buckets(size))))

"""The validation tables every parameter sweep writes (``backtest``, ``portfolio-backtest``).

From the shared layer's results (:mod:`analytics.stats.sweep`) to parts of the run's tables:
``returns/`` (``--keep-returns``), ``validation/``, ``walk_forward/`` and ``oos_equity/``, and
the CSCV logits' histogram the manifest keeps for the report. A job gives its parameters'
columns (:func:`parameter_fields`) and its dates; the rest is the same for every sweep.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd
import pyarrow as pa

from analytics.run.folder import Destination, WrittenPart, to_arrow, write_part
from analytics.stats import sweep as sweep_validation
from analytics.stats.walk_forward import parse_walk_forward

FloatArray = npt.NDArray[np.float64]
RETURNS, VALIDATION = "returns", "validation"
WALK_FORWARD, OOS_EQUITY = "walk_forward", "oos_equity"


def validation_plan(options: Any) -> sweep_validation.Plan:
    """A sweep's CSCV blocks and walk-forward folds from its options (``cscv_blocks``,
    ``walk_forward``, ``anchored``: :mod:`analytics.jobs.sweep_options`)."""
    spec = None
    if options.walk_forward is not None:
        spec = parse_walk_forward(options.walk_forward, anchored=options.anchored)
    return sweep_validation.Plan(options.cscv_blocks, spec)


def ranking(sharpe: npt.ArrayLike, order: npt.ArrayLike) -> npt.NDArray[np.int64]:
    """Indices by Sharpe ratio, best first (NaN last), ties in grid ``order``."""
    s = np.asarray(sharpe, dtype=np.float64)
    key = np.where(np.isnan(s), np.inf, -s)
    return np.lexsort((np.asarray(order), key)).astype(np.int64)


def ranked_top(
    frames: Sequence[pd.DataFrame], top: int
) -> tuple[pd.DataFrame, npt.NDArray[np.int64]]:
    """``top/``'s rows from every chunk's candidates (rows with ``_order``, their index in the
    grid): the best ``top`` by Sharpe ratio, ``rank`` first; and where each came from in the
    candidates' concatenation (to pick their curves)."""
    frame = pd.concat(frames, ignore_index=True)
    best = ranking(frame["sharpe"], frame["_order"])[:top]
    chosen = frame.iloc[best].drop(columns="_order").reset_index(drop=True)
    chosen.insert(0, "rank", np.arange(1, len(chosen) + 1, dtype=np.int64))
    return chosen, best


def parameter_fields(combos: Mapping[str, npt.ArrayLike]) -> list[pa.Field]:
    """The parameters' columns: int64 for whole-number parameters, float64 for the others."""
    fields = []
    for name, values in combos.items():
        kind = pa.int64() if np.asarray(values).dtype.kind in "iu" else pa.float64()
        fields.append(pa.field(name, kind))
    return fields


def returns_schema(combos: Mapping[str, npt.ArrayLike]) -> pa.Schema:
    return pa.schema(
        [
            pa.field("combination", pa.int64()),
            *parameter_fields(combos),
            pa.field("date", pa.date32()),
            pa.field("return", pa.float64()),
        ]
    )


def returns_table(
    combos: Mapping[str, npt.ArrayLike],
    first: int,
    returns: FloatArray,
    dates: npt.NDArray[np.datetime64],
) -> pa.Table:
    """A chunk's part of ``returns/``: long format, each combination's dates together, days
    without a return (NaN) left out. ``returns`` is ``(T, K)`` over ``dates``; ``first`` is the
    chunk's first combination in grid order."""
    k = returns.shape[1]
    flat = returns.T.reshape(-1)
    keep = ~np.isnan(flat)
    columns: dict[str, npt.ArrayLike] = {
        "combination": np.repeat(np.arange(first, first + k, dtype=np.int64), len(dates))[keep]
    }
    for name, values in combos.items():
        columns[name] = np.repeat(np.asarray(values), len(dates))[keep]
    columns["date"] = np.tile(np.asarray(dates, dtype="datetime64[D]"), k)[keep]
    columns["return"] = flat[keep]
    schema = returns_schema(combos)
    return pa.table({f.name: pa.array(columns[f.name]).cast(f.type) for f in schema}, schema=schema)


def write_validation(
    target: Destination,
    combos: Mapping[str, npt.ArrayLike],
    verdict: sweep_validation.Verdict,
    dates: npt.NDArray[np.datetime64],
    pieces: Sequence[Mapping[int, FloatArray]],
) -> list[WrittenPart]:
    """Write ``validation/`` and, with walk-forward, ``walk_forward/`` and ``oos_equity/``
    (``dates``: the validated calendar; ``pieces``: every chunk's chosen test returns)."""
    row, folds, equity = sweep_validation.tables(verdict, dates, pieces)
    fields = [pa.field(n, pa.int64() if n.startswith("n_") else pa.float64()) for n in row]
    table = pa.table({n: pa.array([v]) for n, v in row.items()}, schema=pa.schema(fields))
    parts = [write_part(target, VALIDATION, 0, table)]
    if not verdict.walk_forward:
        return parts
    at = folds["combination"].to_numpy()
    params = {name: np.asarray(values)[at] for name, values in combos.items()}
    head = folds[list(sweep_validation.FOLD_COLUMNS)]
    tail = folds[list(sweep_validation.FOLD_FIGURES)]
    frame = pd.concat([head, pd.DataFrame(params, index=folds.index), tail], axis=1)
    schema = pa.schema(
        [
            pa.field("fold", pa.int64()),
            *(pa.field(n, pa.date32()) for n in sweep_validation.FOLD_COLUMNS[1:5]),
            pa.field("combination", pa.int64()),
            *parameter_fields(combos),
            *(pa.field(n, pa.float64()) for n in sweep_validation.FOLD_FIGURES),
        ]
    )
    parts.append(write_part(target, WALK_FORWARD, 0, to_arrow(frame, schema)))
    oos = pa.schema([pa.field("date", pa.date32()), pa.field("equity", pa.float64())])
    parts.append(write_part(target, OOS_EQUITY, 0, to_arrow(equity, oos)))
    return parts


def logit_histogram(logits: npt.ArrayLike, bins: int = 24) -> dict[str, list[float]]:
    """The CSCV logits' histogram for the report (the manifest keeps 2 x bins numbers, not one
    per split): equal-width bins over the finite logits."""
    values = np.asarray(logits, dtype=np.float64)
    finite = values[np.isfinite(values)]
    if not len(finite):
        return {"edges": [], "counts": []}
    lo, hi = float(finite.min()), float(finite.max())
    if hi <= lo:
        lo, hi = lo - 0.5, hi + 0.5
    counts, edges = np.histogram(finite, bins=bins, range=(lo, hi))
    return {"edges": [float(e) for e in edges], "counts": [int(c) for c in counts]}


def format_verdict(verdict: sweep_validation.Verdict) -> str:
    """The verdict in one line, as the jobs print it after their top table."""
    c = verdict.cscv
    text = (
        f"probability of backtest overfitting {c.pbo:.3f} over {c.n_splits:,} CSCV splits of "
        f"{c.n_trials:,} combinations (median logit {c.median_logit:.3f})"
    )
    if verdict.walk_forward:
        text += f"; walk-forward: {len(verdict.folds)} fold(s)"
    return text

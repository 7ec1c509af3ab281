"""Daily prices of a few symbols on one calendar, and the rolling indicators strategies use.

Arrays are ``(days, symbols)`` on the calendar of the whole selection, NaN where a symbol has no
row (before its listing, on a halt, after its last row). Indicators are computed over each
symbol's own rows (a halt day has no row: a 20-day mean spans 20 of the symbol's sessions, like
the market-performance returns that span a halt), then carried forward onto the calendar, so on
a day without a row every indicator repeats its last value and no rule can change its mind.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from functools import cached_property

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]

#: Bytes of indicators kept per price matrix (least recently used ones are dropped beyond it).
MEMO_BYTES = 256 * 2**20
#: A rolling variance below this share of the window's mean square is a constant window: its
#: z-score is undefined (the cumulative-sum formula leaves a rounding residue instead of 0).
FLAT_VARIANCE = 1e-12


class PriceMatrix:
    """Opens and closes of ``symbols`` on the calendar ``days`` (int days since 1970-01-01).

    Parameters
    ----------
    days : (D,) int array, strictly increasing.
    symbols : (S,) array of names.
    open, close : (D, S) float arrays, NaN where the symbol has no row that day. A row has both.
    """

    def __init__(
        self,
        days: IntArray,
        symbols: npt.NDArray[np.object_],
        open_: FloatArray,
        close: FloatArray,
    ) -> None:
        self.days = np.asarray(days, dtype=np.int64)
        self.symbols = np.asarray(symbols, dtype=object)
        self.open = np.ascontiguousarray(open_, dtype=np.float64)
        self.close = np.ascontiguousarray(close, dtype=np.float64)
        if self.open.shape != self.close.shape or self.close.shape != (
            len(self.days),
            len(self.symbols),
        ):
            raise ValueError("open and close must be (days, symbols)")
        self._memo: OrderedDict[tuple[object, ...], FloatArray] = OrderedDict()
        self._memo_bytes = 0

    @property
    def shape(self) -> tuple[int, int]:
        d, s = self.close.shape
        return d, s

    def subset(self, columns: slice) -> PriceMatrix:
        """The same calendar, a slice of the symbols (indicators are not shared)."""
        return PriceMatrix(
            self.days, self.symbols[columns], self.open[:, columns], self.close[:, columns]
        )

    # ----------------------------------------------------------------------------------------
    # Where each symbol has rows

    @cached_property
    def valid(self) -> BoolArray:
        return ~np.isnan(self.close)

    @cached_property
    def counts(self) -> IntArray:
        """Rows of each symbol (its number of daily returns in a backtest)."""
        return np.asarray(self.valid.sum(axis=0), dtype=np.int64)

    @cached_property
    def rowmap(self) -> npt.NDArray[np.int32]:
        """For each calendar day, the index of the symbol's last row up to it (-1: none yet)."""
        return np.asarray(np.cumsum(self.valid, axis=0, dtype=np.int32) - 1, dtype=np.int32)

    @cached_property
    def first_row(self) -> IntArray:
        """Calendar index of each symbol's first row (D when it has none)."""
        any_row = self.valid.any(axis=0)
        return np.where(any_row, np.argmax(self.valid, axis=0), len(self.days)).astype(np.int64)

    @cached_property
    def last_row(self) -> IntArray:
        """Calendar index of each symbol's last row (-1 when it has none)."""
        d = len(self.days)
        any_row = self.valid.any(axis=0)
        return np.where(any_row, d - 1 - np.argmax(self.valid[::-1], axis=0), -1).astype(np.int64)

    @cached_property
    def gaps(self) -> BoolArray:
        """Days without a row after the symbol's first row (halts and the days after its last)."""
        return ~self.valid & (self.rowmap >= 0)

    # ----------------------------------------------------------------------------------------
    # Each symbol's own rows ("compact": row i is the symbol's i-th session, NaN-padded)

    @cached_property
    def _order(self) -> IntArray:
        return np.argsort(~self.valid, axis=0, kind="stable")

    def compact(self, values: FloatArray) -> FloatArray:
        """``values`` (calendar) on each symbol's own rows, NaN after its last one."""
        rows = int(self.counts.max()) if self.counts.size else 0
        out = np.take_along_axis(values, self._order[:rows], axis=0)
        out[np.arange(rows)[:, None] >= self.counts[None, :]] = np.nan
        return out

    @cached_property
    def _calendar_index(self) -> npt.NDArray[np.intp]:
        """Flat index into a compact array for each calendar cell; before a symbol's first row
        it points one past the end, where :meth:`calendar` puts a NaN."""
        s = self.shape[1]
        rows = int(self.counts.max()) if self.counts.size else 0
        index = self.rowmap.astype(np.intp) * s + np.arange(s, dtype=np.intp)[None, :]
        return np.where(self.rowmap >= 0, index, rows * s)

    @cached_property
    def dense(self) -> bool:
        """Every symbol has a row on every day of the calendar: compact is the calendar."""
        return bool(self.counts.size) and bool((self.counts == len(self.days)).all())

    def calendar(self, values: FloatArray) -> FloatArray:
        """Compact ``values`` back on the calendar, carried forward over days without a row
        (``values`` itself when the matrix is :attr:`dense`: the indicators' builders hand it
        a fresh array, and a days x symbols gather per indicator is a good part of a task)."""
        if self.dense and values.shape == self.shape:
            return values
        flat = np.empty(values.size + 1)
        flat[:-1] = values.reshape(-1)
        flat[-1] = np.nan
        return np.asarray(flat[self._calendar_index])

    @cached_property
    def close_rows(self) -> FloatArray:
        return self.compact(self.close)

    @cached_property
    def close_filled(self) -> FloatArray:
        """The last close up to each day (NaN before the first row)."""
        return self.calendar(self.close_rows)

    @cached_property
    def _centered(self) -> FloatArray:
        # Subtracting each symbol's mean close keeps the running sums small, so their
        # differences (the window sums) lose less to rounding; every rule below compares
        # differences of prices or ratios of them, which the shift does not change.
        rows = self.close_rows
        with np.errstate(invalid="ignore"):
            mean = np.nanmean(rows, axis=0) if rows.size else np.zeros(rows.shape[1])
        return np.asarray(rows - np.nan_to_num(mean)[None, :])

    @cached_property
    def _sums(self) -> tuple[FloatArray, FloatArray]:
        x = self._centered
        s1 = np.zeros((x.shape[0] + 1, x.shape[1]))
        s2 = np.zeros_like(s1)
        np.cumsum(x, axis=0, out=s1[1:])
        np.cumsum(x * x, axis=0, out=s2[1:])
        return s1, s2

    # ----------------------------------------------------------------------------------------
    # Indicators, on the calendar (memoized)

    def _cached(self, key: tuple[object, ...], build: Callable[[], FloatArray]) -> FloatArray:
        if key in self._memo:
            self._memo.move_to_end(key)
            return self._memo[key]
        value = build()
        self._memo[key] = value
        self._memo_bytes += value.nbytes
        while self._memo_bytes > MEMO_BYTES and len(self._memo) > 1:
            _, old = self._memo.popitem(last=False)
            self._memo_bytes -= old.nbytes
        return value

    def _window_sum(self, sums: FloatArray, window: int) -> FloatArray:
        out = np.full((sums.shape[0] - 1, sums.shape[1]), np.nan)
        if window <= out.shape[0]:
            out[window - 1 :] = sums[window:] - sums[:-window]
        return out

    def sma(self, window: int) -> FloatArray:
        """Mean of the last ``window`` closes, minus the symbol's mean close (NaN until full)."""

        def build() -> FloatArray:
            return self.calendar(self._window_sum(self._sums[0], window) / window)

        return self._cached(("sma", window), build)

    def zscore(self, window: int) -> FloatArray:
        """``(close - mean) / std`` over the last ``window`` closes (population std).

        NaN until the window is full and on a constant window.
        """

        def build() -> FloatArray:
            s1 = self._window_sum(self._sums[0], window)
            s2 = self._window_sum(self._sums[1], window)
            mean = s1 / window
            with np.errstate(invalid="ignore", divide="ignore"):
                var = s2 / window - mean * mean
                flat = var <= FLAT_VARIANCE * (s2 / window)
                z = (self._centered - mean) / np.sqrt(np.where(flat, np.nan, var))
            return self.calendar(z)

        return self._cached(("zscore", window), build)

    def channel(self, window: int) -> tuple[FloatArray, FloatArray]:
        """Highest and lowest of the ``window`` closes before each day (NaN until there are)."""

        def build(high: bool) -> FloatArray:
            x = self.close_rows
            fill = -np.inf if high else np.inf
            ext = rolling_extreme(np.where(np.isnan(x), fill, x), window, high=high)
            out = np.full_like(x, np.nan)
            out[window:] = ext[window - 1 : -1]
            out[np.isnan(x)] = np.nan
            return self.calendar(out)

        return (
            self._cached(("high", window), lambda: build(True)),
            self._cached(("low", window), lambda: build(False)),
        )

    def lookback_return(self, lookback: int, every: int) -> FloatArray:
        """``close / close lookback rows earlier - 1``, re-read every ``every`` rows.

        The value is taken on the symbol's rows ``lookback``, ``lookback + every``, ... and held
        in between; NaN before row ``lookback``.
        """

        def build() -> FloatArray:
            rows = self.close_rows
            ret = np.full_like(rows, np.nan)
            if lookback < rows.shape[0]:
                ret[lookback:] = rows[lookback:] / rows[:-lookback] - 1.0
            if every > 1 and lookback < rows.shape[0]:
                i = np.arange(lookback, rows.shape[0])
                ret[lookback:] = ret[lookback + (i - lookback) // every * every]
            return self.calendar(ret)

        return self._cached(("momentum", lookback, every), build)


def rolling_extreme(x: FloatArray, window: int, *, high: bool) -> FloatArray:
    """Max (or min) of rows ``i - window + 1 .. i`` along axis 0 (van Herk / Gil-Werman).

    Row ``i < window - 1`` gets the extreme of the rows so far. ``x`` must hold no NaN.
    """
    n = x.shape[0]
    if n == 0 or window <= 1:
        return x.copy()
    op = np.maximum if high else np.minimum
    fill = -np.inf if high else np.inf
    blocks = -(-n // window)
    padded = np.full((blocks * window, *x.shape[1:]), fill)
    padded[:n] = x
    shaped = padded.reshape(blocks, window, *x.shape[1:])
    prefix = op.accumulate(shaped, axis=1).reshape(padded.shape)
    suffix = op.accumulate(shaped[:, ::-1], axis=1)[:, ::-1].reshape(padded.shape)
    out = prefix.copy()
    # A window ending at row i starts at i - window + 1: the suffix of its first block meets
    # the prefix of its last block.
    out[window - 1 :] = op(suffix[: padded.shape[0] - window + 1], prefix[window - 1 :])
    return out[:n]

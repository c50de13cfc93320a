"""Regular time series: the frequency grid, validation and the gap policy.

Gap policy: missing values (None/NaN, or grid timestamps absent from the input) inside the series are
filled by linear interpolation when a run of them is at most `max_gap` steps long; a longer run is
refused with `GapTooLongError` naming where it is, since interpolating across it would invent data the
models then learn from. Missing values at the start or the end are trimmed, so the forecast origin is the
last real observation. Infinite values are refused.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import numpy as np
import numpy.typing as npt

from .errors import GapTooLongError, InvalidValueError, IrregularTimestampsError, SeriesTooShortError

FloatArray = npt.NDArray[np.float64]

_DAY = timedelta(days=1)
_WEEK = timedelta(days=7)


class Frequency(enum.StrEnum):
    """The sampling step of a series; it fixes the seasons, horizon limit and training window."""

    MIN15 = "15min"
    MIN30 = "30min"
    HOURLY = "hourly"
    DAILY = "daily"

    @property
    def step(self) -> timedelta:
        """The time between two consecutive points."""
        return {
            Frequency.MIN15: timedelta(minutes=15),
            Frequency.MIN30: timedelta(minutes=30),
            Frequency.HOURLY: timedelta(hours=1),
            Frequency.DAILY: _DAY,
        }[self]

    @property
    def seasons(self) -> tuple[int, ...]:
        """Season lengths in steps: daily and weekly below one day, weekly for daily data."""
        if self is Frequency.DAILY:
            return (7,)
        return (_DAY // self.step, _WEEK // self.step)

    @property
    def longest_season(self) -> int:
        """The longest season in steps (one week)."""
        return max(self.seasons)

    @property
    def max_horizon(self) -> int:
        """The longest horizon accepted: one week below daily, 60 days for daily data."""
        return 60 if self is Frequency.DAILY else self.longest_season

    @property
    def min_train(self) -> int:
        """The fewest points a model is fitted on: three weeks below daily, eight weeks for daily data."""
        return 56 if self is Frequency.DAILY else 3 * self.longest_season

    @property
    def default_max_train(self) -> int:
        """The default training window: the latest twelve weeks, or two years of daily data."""
        return 730 if self is Frequency.DAILY else 12 * self.longest_season


@dataclass(frozen=True)
class TimeSeries:
    """A gap-free series on a regular UTC grid: point i is at `start + i * frequency.step`."""

    start: datetime
    frequency: Frequency
    values: FloatArray
    filled: int = 0

    def __post_init__(self) -> None:
        if self.start.tzinfo is None:
            raise IrregularTimestampsError("the start timestamp has no time zone", index=0)
        if self.values.ndim != 1 or not np.all(np.isfinite(self.values)):
            raise InvalidValueError("values must be a one-dimensional array of finite numbers")
        object.__setattr__(self, "start", self.start.astimezone(UTC))

    def __len__(self) -> int:
        return int(self.values.shape[0])

    @property
    def end(self) -> datetime:
        """The timestamp of the last point."""
        return self.timestamp(len(self) - 1)

    def timestamp(self, index: int) -> datetime:
        """The UTC timestamp of point `index` (it may lie past the end, for forecasts)."""
        return self.start + index * self.frequency.step

    def timestamps(self, first: int = 0, count: int | None = None) -> list[datetime]:
        """UTC timestamps of points first .. first + count - 1 (default: to the end)."""
        stop = len(self) if count is None else first + count
        return [self.timestamp(i) for i in range(first, stop)]

    def head(self, count: int) -> TimeSeries:
        """The first `count` points."""
        return TimeSeries(self.start, self.frequency, self.values[:count])

    def tail(self, count: int) -> TimeSeries:
        """The last `count` points (the whole series when it is shorter)."""
        offset = max(0, len(self) - count)
        return TimeSeries(self.timestamp(offset), self.frequency, self.values[offset:])

    @classmethod
    def from_points(
        cls,
        timestamps: Sequence[datetime],
        values: Sequence[float | None],
        frequency: Frequency,
        *,
        max_gap: int = 3,
    ) -> TimeSeries:
        """Validate timestamped values on the frequency's grid and fill short gaps (see the module doc)."""
        if len(timestamps) != len(values):
            raise InvalidValueError(
                f"{len(timestamps)} timestamps but {len(values)} values", timestamps=len(timestamps)
            )
        if not timestamps:
            raise SeriesTooShortError("the series is empty", length=0, needed=1)
        step = frequency.step
        first = timestamps[0]
        if first.tzinfo is None:
            raise IrregularTimestampsError("timestamp 0 has no time zone; send UTC timestamps", index=0)
        first = first.astimezone(UTC)
        offsets: list[int] = []
        previous = -1
        for i, ts in enumerate(timestamps):
            if ts.tzinfo is None:
                raise IrregularTimestampsError(
                    f"timestamp {i} has no time zone; send UTC timestamps", index=i
                )
            delta = ts.astimezone(UTC) - first
            offset, remainder = divmod(delta, step)
            if remainder:
                raise IrregularTimestampsError(
                    f"timestamp {i} ({ts.isoformat()}) is off the {frequency.value} grid that starts at "
                    f"{first.isoformat()}",
                    index=i,
                )
            if offset <= previous:
                raise IrregularTimestampsError(
                    f"timestamp {i} ({ts.isoformat()}) is not after the one before it", index=i
                )
            offsets.append(offset)
            previous = offset
        grid = np.full(offsets[-1] + 1, np.nan)
        for offset, value in zip(offsets, values, strict=True):
            number = math.nan if value is None else float(value)
            if math.isinf(number):
                raise InvalidValueError(f"the value at {(first + offset * step).isoformat()} is infinite")
            grid[offset] = number
        known = np.flatnonzero(~np.isnan(grid))
        if known.size == 0:
            raise SeriesTooShortError("the series has no value", length=0, needed=1)
        grid = grid[known[0] : known[-1] + 1]
        start = first + int(known[0]) * step
        filled = fill_gaps(grid, start, step, max_gap)
        return cls(start, frequency, grid, filled)


def fill_gaps(values: FloatArray, start: datetime, step: timedelta, max_gap: int) -> int:
    """Interpolate interior NaN runs of at most max_gap points in place; return how many were filled."""
    missing = np.isnan(values)
    if not missing.any():
        return 0
    edges = np.diff(np.concatenate(([0], missing.astype(np.int8), [0])))
    run_starts = np.flatnonzero(edges == 1)
    run_ends = np.flatnonzero(edges == -1)
    for begin, end in zip(run_starts, run_ends, strict=True):
        if end - begin > max_gap:
            raise GapTooLongError(
                f"{end - begin} missing points from {(start + int(begin) * step).isoformat()}; "
                f"at most {max_gap} are filled: send the data after the gap",
                at=(start + int(begin) * step).isoformat(),
                length=int(end - begin),
                max_gap=max_gap,
            )
    index = np.arange(values.shape[0])
    values[missing] = np.interp(index[missing], index[~missing], values[~missing])
    return int(missing.sum())

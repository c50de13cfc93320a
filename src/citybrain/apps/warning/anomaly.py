"""Streaming anomaly detection on sensor series: stuck sensors, spikes, level shifts and drift from peers.

Everything here is pure and synchronous (no I/O, no database): a detector is fed one reading at a time
of one series (an entity's attribute) and answers a `Finding` or None. `Detector` keeps one set of
detectors per series, at most `max_series` of them (the least recently seen is forgotten first).

The four detectors, each with O(window) memory per series:

* stuck: the value stays within `tolerance` of the run's first value for `min_readings` readings (or
  `min_duration`) while the series normally changes: its rate of change before the run (an exponential
  average over about `history` readings) must be at least `min_change_rate`, and the run must be unlikely
  at that rate (probability at most `max_chance`), so a lamp's powerState or a quantised series that
  often repeats is never flagged. A run at a resting value (0 by default: no traffic at night, no sun)
  needs `rest_duration` (a day) before it counts.
* spike: a reading farther from the median of the last `window` readings than both
  k · 1.4826 · MAD and `min_deviation`, whose series comes back on the next reading (at most `max_width`
  readings away), and which differs from the readings either side of it by as much (so the lagging
  median on the edge of a steep daily ramp makes no spike). It is
  reported on the reading that comes back; a longer excursion is not a spike.
* drop / jump: the median of the last `after` readings differs from the median of the `before` readings
  preceding them by more than `min_shift` and k times the noise: the pooled robust spread inside the two
  windows, floored by the running mean of successive differences (a small sample's MAD can be far too
  low). The change point is where the readings start to sit nearer the new level; at least half the
  change must happen across it (a step, not a steep ramp such as the morning rush hour), and `after`
  readings must follow it. The new level is then the next reference.
* drift: the residual value − median(peers) is averaged (EWMA, `alpha`) and compared with the residual's
  reference level learnt over the first `warmup` readings (then followed very slowly while in control);
  a departure beyond k times the residual's robust scale and `min_deviation`, held for `sustain`
  readings, is a drift. Peers are nearby series of the same entity type and attribute, chosen by the
  caller.

Severity follows the four warning levels of the Emergency Response Law (突发事件应对法, 2007 text
Art. 42): 蓝 IV (blue) < 黄 III (yellow) < 橙 II (orange) < 红 I (red). It is a suggestion from the score
(blue below 2k robust standard deviations, then yellow, orange and red from 2k, 4k and 8k) or from the
duration (`escalation`, by default 3 h, 12 h and 48 h after the anomaly began), whichever is higher: a
spike is ranked by score and is at most yellow, a drop or jump by score, a stuck sensor by duration, a
drift by both. Stuck and drift episodes are reported when first confirmed and again each time their
severity rises.

An episode's end is reported too, as a `recovered` finding whose `ended` names the kind that ended: a
stuck sensor's value moves again; a drift stays back within bounds for `sustain` readings; after a drop or
a jump, the median of the last `after` readings is nearer the level before the step than the level after
it (or a step back is confirmed), or `quiet` has passed since the step without another one (the new
level is then normal). A spike is a single reading and has no episode.

A finding's `message` is an English template with `params` (str.format names), marked for the
translation catalogue; `text()` renders the English line.
"""

from __future__ import annotations

import math
import sys
from collections import OrderedDict, deque
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from itertools import pairwise
from typing import Literal, NamedTuple

Kind = Literal["stuck", "spike", "drop", "jump", "drift", "recovered"]
Level = Literal["blue", "yellow", "orange", "red"]
LEVELS: tuple[Level, ...] = ("blue", "yellow", "orange", "red")
KINDS: tuple[Kind, ...] = ("stuck", "spike", "drop", "jump", "drift", "recovered")
# The kinds that last (an episode, ended by a `recovered` finding); a spike is one reading.
EPISODES: tuple[Kind, ...] = ("stuck", "drop", "jump", "drift")
MAD_TO_SIGMA = 1.4826  # 1 / Φ⁻¹(3/4): the MAD of normal noise times this is its standard deviation
DEFAULT_ESCALATION = (timedelta(hours=3), timedelta(hours=12), timedelta(hours=48))
Params = Mapping[str, str | int | float]


def N_(message: str) -> str:  # noqa: N802 - the gettext convention for "mark only"
    """Mark a message for the translation catalogue; translated where it is shown."""
    return message


MESSAGES: dict[Kind, str] = {
    "stuck": N_("{attribute} of {entity} has stayed at {value} for {readings} readings ({minutes} min)."),
    "spike": N_(
        "{attribute} of {entity} spiked to {value} and came straight back; about {expected} was expected."
    ),
    "drop": N_("{attribute} of {entity} dropped from about {expected} to {value} and stayed there."),
    "jump": N_("{attribute} of {entity} jumped from about {expected} to {value} and stayed there."),
    "drift": N_(
        "{attribute} of {entity} has drifted {offset} away from its {peers} neighbours for {minutes} min."
    ),
    "recovered": N_("{attribute} of {entity} is back to normal at {value} after {minutes} min."),
}


class SeriesKey(NamedTuple):
    """One series: an entity's attribute."""

    entity: str
    attribute: str


@dataclass(frozen=True, slots=True)
class Finding:
    """One anomaly of one series, with what was expected, how strong it is and a suggested level."""

    kind: Kind
    series: SeriesKey
    time: datetime  # the anomalous reading (a spike) or the reading that confirmed the anomaly
    since: datetime  # when the anomaly began
    value: float  # the reading (spike, stuck, drift) or the new level (drop, jump)
    expected: float  # the baseline: local median, previous level, what the peers imply (stuck: the value)
    score: float  # strength in robust standard deviations (stuck: run length over the length needed)
    severity: Level
    message: str  # English template, str.format names from params
    params: Params
    ended: Kind | None = None  # a recovered finding: the kind of the episode that ended

    @property
    def duration(self) -> timedelta:
        """How long the anomaly has lasted when it was reported."""
        return self.time - self.since

    def text(self) -> str:
        """The English one-line message with its parameters filled in."""
        return self.message.format(**self.params)


# --- configuration ---------------------------------------------------------------------------------


def _require(condition: bool, name: str, rule: str, value: object) -> None:
    """Raise a ValueError naming the field when a configuration value breaks its rule."""
    if not condition:
        raise ValueError(f"{name} must be {rule}, not {value!r}")


def _check_escalation(name: str, escalation: tuple[timedelta, ...]) -> None:
    """Escalation durations: three, positive and increasing (to yellow, orange, red)."""
    ok = len(escalation) == 3 and escalation[0] > timedelta(0)
    ok = ok and all(a < b for a, b in pairwise(escalation))
    _require(ok, f"{name}.escalation", "three increasing positive durations", escalation)


@dataclass(frozen=True)
class StuckConfig:
    """When an unchanging value counts as a stuck sensor."""

    enabled: bool = True
    min_readings: int = 12
    min_duration: timedelta | None = None
    tolerance: float = 0.0
    history: int = 288
    min_history: int = 24
    min_change_rate: float = 0.5
    max_chance: float = 1e-6
    rest_values: tuple[float, ...] = (0.0,)
    rest_duration: timedelta = timedelta(hours=24)
    escalation: tuple[timedelta, ...] = DEFAULT_ESCALATION

    def __post_init__(self) -> None:
        """Check every field; a bad one raises ValueError naming it."""
        _require(self.min_readings >= 3, "stuck.min_readings", "at least 3", self.min_readings)
        _require(
            self.min_duration is None or self.min_duration > timedelta(0),
            "stuck.min_duration",
            "a positive duration or None",
            self.min_duration,
        )
        _require(
            math.isfinite(self.tolerance) and self.tolerance >= 0, "stuck.tolerance", ">= 0", self.tolerance
        )
        _require(self.history >= 2, "stuck.history", "at least 2", self.history)
        _require(self.min_history >= 1, "stuck.min_history", "at least 1", self.min_history)
        _require(0 < self.min_change_rate <= 1, "stuck.min_change_rate", "in (0, 1]", self.min_change_rate)
        _require(0 < self.max_chance < 1, "stuck.max_chance", "in (0, 1)", self.max_chance)
        _require(
            all(math.isfinite(v) for v in self.rest_values), "stuck.rest_values", "finite", self.rest_values
        )
        _require(
            self.rest_duration > timedelta(0),
            "stuck.rest_duration",
            "a positive duration",
            self.rest_duration,
        )
        _check_escalation("stuck", self.escalation)


@dataclass(frozen=True)
class SpikeConfig:
    """When one reading counts as a spike."""

    enabled: bool = True
    window: int = 48
    min_points: int = 24
    k: float = 6.0
    min_deviation: float = 0.0
    max_width: int = 1

    def __post_init__(self) -> None:
        """Check every field; a bad one raises ValueError naming it."""
        _require(self.window >= 5, "spike.window", "at least 5", self.window)
        _require(
            3 <= self.min_points <= self.window, "spike.min_points", "3 to spike.window", self.min_points
        )
        _require(math.isfinite(self.k) and self.k > 0, "spike.k", "> 0", self.k)
        _require(
            math.isfinite(self.min_deviation) and self.min_deviation >= 0,
            "spike.min_deviation",
            ">= 0",
            self.min_deviation,
        )
        _require(
            1 <= self.max_width < self.min_points, "spike.max_width", "1 to min_points - 1", self.max_width
        )


@dataclass(frozen=True)
class ShiftConfig:
    """When a lasting change of level counts as a drop or a jump."""

    enabled: bool = True
    before: int = 12
    after: int = 6
    k: float = 8.0
    min_shift: float = 0.0
    # After this long without another step the new level is normal and the episode ends (None: never).
    quiet: timedelta | None = timedelta(hours=6)

    def __post_init__(self) -> None:
        """Check every field; a bad one raises ValueError naming it."""
        _require(self.before >= 3, "shift.before", "at least 3", self.before)
        _require(
            self.quiet is None or self.quiet > timedelta(0),
            "shift.quiet",
            "a positive duration or None",
            self.quiet,
        )
        _require(self.after >= 3, "shift.after", "at least 3", self.after)
        _require(math.isfinite(self.k) and self.k > 0, "shift.k", "> 0", self.k)
        _require(
            math.isfinite(self.min_shift) and self.min_shift >= 0, "shift.min_shift", ">= 0", self.min_shift
        )


@dataclass(frozen=True)
class DriftConfig:
    """When a series departing from its peers' median counts as drift."""

    enabled: bool = True
    alpha: float = 0.05
    warmup: int = 48
    k: float = 4.0
    min_deviation: float = 0.0
    sustain: int = 12
    min_peers: int = 3
    max_peer_age: timedelta = timedelta(minutes=30)
    reference_alpha: float = 0.001
    escalation: tuple[timedelta, ...] = DEFAULT_ESCALATION

    def __post_init__(self) -> None:
        """Check every field; a bad one raises ValueError naming it."""
        _require(0 < self.alpha <= 1, "drift.alpha", "in (0, 1]", self.alpha)
        _require(self.warmup >= 5, "drift.warmup", "at least 5", self.warmup)
        _require(math.isfinite(self.k) and self.k > 0, "drift.k", "> 0", self.k)
        _require(
            math.isfinite(self.min_deviation) and self.min_deviation >= 0,
            "drift.min_deviation",
            ">= 0",
            self.min_deviation,
        )
        _require(self.sustain >= 1, "drift.sustain", "at least 1", self.sustain)
        _require(self.min_peers >= 1, "drift.min_peers", "at least 1", self.min_peers)
        _require(
            self.max_peer_age > timedelta(0), "drift.max_peer_age", "a positive duration", self.max_peer_age
        )
        _require(0 <= self.reference_alpha < 1, "drift.reference_alpha", "in [0, 1)", self.reference_alpha)
        _check_escalation("drift", self.escalation)


@dataclass(frozen=True)
class DetectorConfig:
    """The four detectors' settings and how many series the facade tracks at most."""

    stuck: StuckConfig = field(default_factory=StuckConfig)
    spike: SpikeConfig = field(default_factory=SpikeConfig)
    shift: ShiftConfig = field(default_factory=ShiftConfig)
    drift: DriftConfig = field(default_factory=DriftConfig)
    max_series: int = 100_000

    def __post_init__(self) -> None:
        """Check the series bound (each kind checks its own fields)."""
        _require(self.max_series >= 1, "max_series", "at least 1", self.max_series)


# --- small robust statistics -----------------------------------------------------------------------


def _median(ordered: Sequence[float]) -> float:
    """The median of an already sorted, non-empty sequence."""
    n = len(ordered)
    half = n // 2
    return ordered[half] if n % 2 else (ordered[half - 1] + ordered[half]) / 2


def _mad(values: Iterable[float], centre: float) -> float:
    """The median absolute deviation of the values from a centre."""
    return _median(sorted([abs(v - centre) for v in values]))


def _round(value: float) -> float:
    """A value with four significant digits, for messages."""
    return float(f"{value:.4g}")


def _score_level(score: float, k: float) -> int:
    """0 (blue) below 2k, then one level more at 2k, 4k and 8k."""
    level = 0
    while level < 3 and score >= k * 2 ** (level + 1):
        level += 1
    return level


def _duration_level(duration: timedelta, escalation: tuple[timedelta, ...]) -> int:
    """How many escalation durations the anomaly has lasted (0 = blue .. 3 = red)."""
    return sum(1 for limit in escalation if duration >= limit)


def _minutes(duration: timedelta) -> int:
    """Whole minutes of a duration."""
    return int(duration.total_seconds() // 60)


def _recovered(series: SeriesKey, ended: Kind, time: datetime, since: datetime, value: float) -> Finding:
    """The end of an episode of the kind `ended` that began at `since`, seen on a reading at `time`."""
    params: dict[str, str | int | float] = {
        "entity": series.entity,
        "attribute": series.attribute,
        "value": _round(value),
        "minutes": _minutes(time - since),
        "anomaly": ended,
    }
    return Finding(
        "recovered", series, time, since, value, value, 0.0, "blue", MESSAGES["recovered"], params, ended
    )


# --- detectors -------------------------------------------------------------------------------------


class StuckDetector:
    """Flags a series whose value stops changing although it normally changes on most readings."""

    __slots__ = (
        "_needed",
        "_rate",
        "_reported",
        "_run_count",
        "_run_start",
        "_run_value",
        "_steps",
        "config",
        "series",
    )

    def __init__(self, series: SeriesKey, config: StuckConfig) -> None:
        """Start with no reading of the series."""
        self.series = series
        self.config = config
        self._rate = 0.0  # exponential average of "the value changed" over the steps before the run
        self._steps = 0
        self._run_value: float | None = None
        self._run_start: datetime | None = None
        self._run_count = 0
        self._needed = 0
        self._reported = -1  # the level last reported for the current run

    @property
    def is_stuck(self) -> bool:
        """Whether the current run has been reported stuck."""
        return self._reported >= 0

    def _step(self, changed: bool) -> None:
        """Account one step between readings in the rate of change."""
        self._steps += 1
        alpha = max(1.0 / self.config.history, 1.0 / self._steps)
        self._rate += alpha * ((1.0 if changed else 0.0) - self._rate)

    def _readings_needed(self) -> int:
        """The shortest run that is unlikely (at most max_chance) at the series' rate of change."""
        config = self.config
        if self._rate >= 1.0:
            return config.min_readings
        if self._rate <= 0.0:
            return sys.maxsize  # a series that never changes is never stuck
        unlikely = 1 + math.ceil(math.log(config.max_chance) / math.log(1.0 - self._rate))
        return max(config.min_readings, unlikely)

    def observe(self, time: datetime, value: float) -> Finding | None:
        """Feed one reading; a finding when the run is confirmed stuck or its severity rises."""
        config = self.config
        if self._run_value is None or abs(value - self._run_value) > config.tolerance:
            ended = None
            if self._run_value is not None:
                if self._reported < 0:  # an ordinary run: its unchanged steps are normal behaviour
                    for _ in range(min(self._run_count - 1, 4 * config.history)):
                        self._step(False)
                elif self._run_start is not None:  # a stuck run: the sensor moves again
                    ended = _recovered(self.series, "stuck", time, self._run_start, value)
                self._step(True)
            self._run_value, self._run_start, self._run_count = value, time, 1
            self._reported = -1
            self._needed = self._readings_needed()
            return ended
        self._run_count += 1
        if self._steps < config.min_history or self._rate < config.min_change_rate:
            return None
        assert self._run_start is not None
        duration = time - self._run_start
        if any(abs(self._run_value - rest) <= config.tolerance for rest in config.rest_values):
            if duration < config.rest_duration:
                return None
            score = duration / config.rest_duration
        else:
            long_enough = (
                config.min_duration is not None and self._run_count >= 3 and duration >= config.min_duration
            )
            if self._run_count < self._needed and not long_enough:
                return None
            score = self._run_count / self._needed
        level = _duration_level(duration, config.escalation)
        if level <= self._reported:
            return None
        self._reported = level
        params: dict[str, str | int | float] = {
            "entity": self.series.entity,
            "attribute": self.series.attribute,
            "value": _round(self._run_value),
            "readings": self._run_count,
            "minutes": _minutes(duration),
        }
        return Finding(
            "stuck",
            self.series,
            time,
            self._run_start,
            self._run_value,
            self._run_value,
            score,
            LEVELS[level],
            MESSAGES["stuck"],
            params,
        )


class SpikeDetector:
    """Flags a single reading far from the local median that the series returns from at once."""

    __slots__ = ("_before", "_long", "_run", "_window", "config", "series")

    def __init__(self, series: SeriesKey, config: SpikeConfig) -> None:
        """Start with an empty window."""
        self.series = series
        self.config = config
        self._window: deque[float] = deque(maxlen=config.window)
        self._run: list[tuple[datetime, float, float, float]] = []  # (time, value, median, sigma) away
        self._before = math.nan  # the last reading before the current excursion
        self._long = False  # the current excursion is too long to be a spike

    def observe(self, time: datetime, value: float) -> Finding | None:
        """Feed one reading; a finding (about the previous reading) when the series comes back."""
        config, window = self.config, self._window
        if len(window) < config.min_points:
            window.append(value)
            return None
        ordered = sorted(window)
        median = _median(ordered)
        deviation = abs(value - median)
        sigma = 0.0
        away = False
        if deviation > config.min_deviation:
            sigma = MAD_TO_SIGMA * _mad(ordered, median)
            threshold = max(config.k * sigma, config.min_deviation)
            away = threshold > 0 and deviation > threshold
        if away:
            if self._long:
                window.append(value)
                return None
            if not self._run:
                self._before = window[-1]
            self._run.append((time, value, median, sigma))
            if len(self._run) > config.max_width:  # a level change, not a spike: the window follows it
                self._long = True
                window.extend(v for _, v, _, _ in self._run)
                self._run.clear()
            return None
        finding = self._spike(value) if self._run else None
        if self._run and finding is None:  # not a spike after all: the readings are part of the baseline
            window.extend(v for _, v, _, _ in self._run)
        self._run.clear()
        self._long = False
        window.append(value)
        return finding

    def _noise(self) -> float:
        """The noise's standard deviation from the window's successive differences (blind to slow trends)."""
        ordered = sorted([b - a for a, b in pairwise(self._window)])
        return MAD_TO_SIGMA * _mad(ordered, _median(ordered)) / math.sqrt(2)

    def _spike(self, after: float) -> Finding | None:
        """The finding for the excursion that just ended, if it stands out from the readings either side.

        On the edge of a steep daily ramp the median lags behind, so a reading is also required to differ
        from both its neighbours by more than k times the noise (the larger of the window's robust spread
        and the spread of its successive differences).
        """
        config = self.config
        time, value, median, sigma = max(self._run, key=lambda r: abs(r[1] - r[2]))
        step = min(abs(value - self._before), abs(value - after))
        if step <= max(config.k * max(sigma, self._noise()), config.min_deviation):
            return None
        scale = max(sigma, config.min_deviation / config.k)
        score = abs(value - median) / scale
        level = min(_score_level(score, config.k), 1)
        params: dict[str, str | int | float] = {
            "entity": self.series.entity,
            "attribute": self.series.attribute,
            "value": _round(value),
            "expected": _round(median),
        }
        return Finding(
            "spike",
            self.series,
            time,
            self._run[0][0],
            value,
            median,
            score,
            LEVELS[level],
            MESSAGES["spike"],
            params,
        )


class ShiftDetector:
    """Flags a lasting step of level (drop or jump) between two adjacent windows of readings."""

    __slots__ = ("_episode", "_step_size", "_steps", "_times", "_values", "config", "series")

    def __init__(self, series: SeriesKey, config: ShiftConfig) -> None:
        """Start with empty windows."""
        self.series = series
        self.config = config
        size = config.before + config.after
        self._times: deque[datetime] = deque(maxlen=size)
        self._values: deque[float] = deque(maxlen=size)
        self._step_size = 0.0  # running mean of |successive difference|, large ones clipped
        self._steps = 0
        # The open episode: (kind, since, level before it, level now, time of its last step).
        self._episode: tuple[Kind, datetime, float, float, datetime] | None = None

    @property
    def in_episode(self) -> bool:
        """Whether a drop or jump has been reported and has not ended yet."""
        return self._episode is not None

    def restart(self) -> None:
        """Empty the windows (a stuck run is no baseline); an open episode stays open."""
        self._times.clear()
        self._values.clear()

    def _episode_end(self, time: datetime, value: float) -> Finding | None:
        """The end of the open episode: quiet for long enough, or back nearer the level before the step."""
        assert self._episode is not None
        kind, since, before, level, last = self._episode
        quiet = self.config.quiet
        if quiet is not None and time - last >= quiet:
            self._episode = None
            return _recovered(self.series, kind, time, since, value)
        after = self.config.after
        if len(self._values) < after:
            return None
        recent = _median(sorted(list(self._values)[-after:]))
        if abs(recent - before) >= abs(recent - level):
            return None
        self._episode = None
        while len(self._values) > after:  # the step back is no new step: the windows start from here
            self._times.popleft()
            self._values.popleft()
        return _recovered(self.series, kind, time, since, recent)

    def _track_noise(self, value: float) -> None:
        """Update the running mean of |successive difference| (a floor for the spread within windows)."""
        if not self._values:
            return
        self._steps += 1
        size = abs(value - self._values[-1])
        if self._steps > self.config.before:
            size = min(size, 4 * self._step_size)
        alpha = max(1.0 / (4 * self.config.before), 1.0 / self._steps)
        self._step_size += alpha * (size - self._step_size)

    def observe(self, time: datetime, value: float) -> Finding | None:
        """Feed one reading; a finding once `after` readings confirm a new level."""
        config = self.config
        self._track_noise(value)
        self._times.append(time)
        self._values.append(value)
        if self._episode is not None and (ended := self._episode_end(time, value)) is not None:
            return ended
        if len(self._values) < config.before + config.after:
            return None
        values = list(self._values)
        before = sorted(values[: config.before])
        after = sorted(values[config.before :])
        old, new = _median(before), _median(after)
        delta = new - old
        if abs(delta) <= config.min_shift:
            return None
        spread = [abs(v - old) for v in before] + [abs(v - new) for v in after]
        sigma = MAD_TO_SIGMA * _median(sorted(spread))
        if sigma > 0:  # E|difference| = 2σ/√π for normal noise; a small sample's MAD can be far too low
            sigma = max(sigma, self._step_size * math.sqrt(math.pi) / 2)
        threshold = max(config.k * sigma, config.min_shift)
        if threshold <= 0 or abs(delta) <= threshold:
            return None
        onset = len(values)  # the change point: from here on every reading is nearer the new level
        while onset > 0 and abs(values[onset - 1] - new) < abs(values[onset - 1] - old):
            onset -= 1
        if len(values) - onset < config.after or onset < 3:
            return None
        # a step, not a steep ramp: most of the change happens across the change point itself
        across = _median(sorted(values[onset : onset + 3])) - _median(sorted(values[onset - 3 : onset]))
        if across * delta <= 0 or abs(across) < abs(delta) / 2:
            return None
        times = list(self._times)
        since = times[onset]
        for _ in range(onset):  # the new level is the next reference
            self._times.popleft()
            self._values.popleft()
        scale = max(sigma, config.min_shift / config.k)
        score = abs(delta) / scale
        kind: Kind = "drop" if delta < 0 else "jump"
        params: dict[str, str | int | float] = {
            "entity": self.series.entity,
            "attribute": self.series.attribute,
            "value": _round(new),
            "expected": _round(old),
        }
        level = _score_level(score, config.k)
        if self._episode is not None:
            episode, began, reference, _level, _last = self._episode
            if kind != episode:  # a step back: the episode ends
                self._episode = None
                return _recovered(self.series, episode, time, began, new)
            self._episode = (episode, began, reference, new, time)  # a further step the same way
        else:
            self._episode = (kind, since, old, new, time)
        return Finding(kind, self.series, time, since, new, old, score, LEVELS[level], MESSAGES[kind], params)


class DriftDetector:
    """Flags a series whose offset from its peers' median departs from its usual offset and stays away."""

    __slots__ = (
        "_away_count",
        "_away_since",
        "_back",
        "_ewma",
        "_reference",
        "_reported",
        "_scale",
        "_warmup",
        "compared_at",
        "config",
        "series",
    )

    def __init__(self, series: SeriesKey, config: DriftConfig) -> None:
        """Start learning the usual offset from the peers."""
        self.series = series
        self.config = config
        self._warmup: list[float] | None = []
        self._reference = 0.0
        self._scale = 0.0
        self._ewma = 0.0
        self._away_since: datetime | None = None
        self._away_count = 0
        self._reported = -1
        self._back = 0  # readings back within bounds since a reported drift
        # The time of the last reading compared with enough peers (None: none yet).
        self.compared_at: datetime | None = None

    def observe(self, time: datetime, value: float, peers: Sequence[float]) -> Finding | None:
        """Feed one reading with the peers' current values; a finding when drift is confirmed or worsens."""
        config = self.config
        if len(peers) < config.min_peers:
            return None
        self.compared_at = time
        peer_median = _median(sorted(peers))
        residual = value - peer_median
        if self._warmup is not None:
            self._warmup.append(residual)
            if len(self._warmup) >= config.warmup:
                ordered = sorted(self._warmup)
                self._reference = self._ewma = _median(ordered)
                self._scale = max(
                    MAD_TO_SIGMA * _mad(ordered, self._reference), config.min_deviation / config.k
                )
                self._warmup = None
            return None
        self._ewma += config.alpha * (residual - self._ewma)
        departure = self._ewma - self._reference
        threshold = max(config.k * self._scale, config.min_deviation)
        if threshold <= 0 or abs(departure) <= threshold:
            self._reference += config.reference_alpha * (residual - self._reference)
            if self._reported >= 0 and self._away_since is not None:  # back: for `sustain` readings?
                self._back += 1
                if self._back < config.sustain:
                    return None
                since = self._away_since
                self._away_since, self._away_count, self._reported, self._back = None, 0, -1, 0
                return _recovered(self.series, "drift", time, since, value)
            self._away_since, self._away_count, self._reported = None, 0, -1
            return None
        self._back = 0
        if self._away_since is None:
            self._away_since = time
        self._away_count += 1
        if self._away_count < config.sustain:
            return None
        duration = time - self._away_since
        score = abs(departure) / self._scale
        level = max(_score_level(score, config.k), _duration_level(duration, config.escalation))
        if level <= self._reported:
            return None
        self._reported = level
        offset = _round(departure)
        params: dict[str, str | int | float] = {
            "entity": self.series.entity,
            "attribute": self.series.attribute,
            "offset": f"+{offset}" if offset > 0 else str(offset),
            "peers": len(peers),
            "minutes": _minutes(duration),
            "value": _round(value),
        }
        expected = peer_median + self._reference
        return Finding(
            "drift",
            self.series,
            time,
            self._away_since,
            value,
            expected,
            score,
            LEVELS[level],
            MESSAGES["drift"],
            params,
        )


# --- the facade ------------------------------------------------------------------------------------


class _SeriesState:
    """What the facade keeps per series: the last reading and the enabled detectors."""

    __slots__ = ("config", "drift", "last_time", "last_value", "shift", "spike", "stuck")

    def __init__(self, series: SeriesKey, config: DetectorConfig) -> None:
        """Create the enabled detectors (drift only once peers are given)."""
        self.config = config
        self.last_time: datetime | None = None
        self.last_value = math.nan
        self.stuck = StuckDetector(series, config.stuck) if config.stuck.enabled else None
        self.spike: SpikeDetector | None = None
        self.shift: ShiftDetector | None = None
        self.drift: DriftDetector | None = None
        self.start_windows(series)

    def start_windows(self, series: SeriesKey) -> None:
        """Empty the spike and shift windows (an open drop or jump stays open)."""
        config = self.config
        self.spike = SpikeDetector(series, config.spike) if config.spike.enabled else None
        if self.shift is not None:
            self.shift.restart()
        elif config.shift.enabled:
            self.shift = ShiftDetector(series, config.shift)


class Detector:
    """Runs the four detectors over many series, one reading at a time, with bounded memory."""

    def __init__(
        self, config: DetectorConfig | None = None, overrides: Mapping[str, DetectorConfig] | None = None
    ):
        """Use `config` for every series, or `overrides[attribute]` for the attributes it names."""
        self.config = config or DetectorConfig()
        self.overrides = dict(overrides or {})
        self._states: OrderedDict[SeriesKey, _SeriesState] = OrderedDict()

    def __len__(self) -> int:
        """How many series are tracked."""
        return len(self._states)

    def __contains__(self, series: object) -> bool:
        """Whether the series is tracked."""
        return series in self._states

    def observe(
        self,
        series: SeriesKey | tuple[str, str],
        time: datetime,
        value: float,
        peers: Iterable[SeriesKey | tuple[str, str]] | None = None,
    ) -> list[Finding]:
        """Feed one reading of a series (peers: nearby series of the same type and attribute).

        A reading not later than the series' last one, or not a finite number, is ignored. The time must
        carry a UTC offset.
        """
        if time.utcoffset() is None:
            raise ValueError(f"time must carry a UTC offset, not {time!r}")
        if not math.isfinite(value):
            return []
        key = series if isinstance(series, SeriesKey) else SeriesKey(*series)
        states = self._states
        state = states.get(key)
        if state is None:
            state = _SeriesState(key, self.overrides.get(key.attribute, self.config))
            states[key] = state
            if len(states) > self.config.max_series:
                states.popitem(last=False)
        else:
            if state.last_time is not None and time <= state.last_time:
                return []
            states.move_to_end(key)
        state.last_time, state.last_value = time, value
        findings: list[Finding] = []
        if state.stuck is not None:
            was_stuck = state.stuck.is_stuck
            if (found := state.stuck.observe(time, value)) is not None:
                findings.append(found)
            if was_stuck and not state.stuck.is_stuck:  # a stuck run is no baseline: start the windows anew
                state.start_windows(key)
        if state.spike is not None and (found := state.spike.observe(time, value)) is not None:
            findings.append(found)
        if state.shift is not None and (found := state.shift.observe(time, value)) is not None:
            findings.append(found)
        if peers is not None and state.config.drift.enabled:
            values = self._peer_values(key, time, peers, state.config.drift.max_peer_age)
            if state.drift is None:
                state.drift = DriftDetector(key, state.config.drift)
            if (found := state.drift.observe(time, value, values)) is not None:
                findings.append(found)
        return findings

    def _peer_values(
        self, key: SeriesKey, time: datetime, peers: Iterable[SeriesKey | tuple[str, str]], max_age: timedelta
    ) -> list[float]:
        """The latest values of the peers that were read within max_age of `time` (the series excluded)."""
        values = []
        for peer in peers:
            state = self._states.get(peer if isinstance(peer, SeriesKey) else SeriesKey(*peer))
            if state is None or state.last_time is None or peer == key:
                continue
            if abs(time - state.last_time) <= max_age:
                values.append(state.last_value)
        return values

    def drift_compared(self, series: SeriesKey | tuple[str, str]) -> datetime | None:
        """When a reading of the series was last compared with enough peers (None: never, or forgotten)."""
        key = series if isinstance(series, SeriesKey) else SeriesKey(*series)
        state = self._states.get(key)
        return state.drift.compared_at if state is not None and state.drift is not None else None

    def reset_drift(self, series: SeriesKey | tuple[str, str]) -> None:
        """Forget the drift detector of a series (it learns the usual offset from its peers again)."""
        key = series if isinstance(series, SeriesKey) else SeriesKey(*series)
        state = self._states.get(key)
        if state is not None:
            state.drift = None

    def reset(self, series: SeriesKey | tuple[str, str]) -> bool:
        """Forget a series (after repair or recalibration); whether it was tracked."""
        key = series if isinstance(series, SeriesKey) else SeriesKey(*series)
        return self._states.pop(key, None) is not None

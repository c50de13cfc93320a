"""API shapes of the environment app: AQI requests and reports of stations, districts and the city."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from citybrain.apps.environment import aqi, series
from citybrain.apps.environment import services as svc


class Strict(BaseModel):
    """A model refusing unknown fields."""

    model_config = ConfigDict(extra="forbid")


class AqiRequest(Strict):
    """Concentrations to index: by indicator (e.g. pm25_1h), with the version or the observation time."""

    concentrations: dict[str, float | None] = Field(
        min_length=1,
        max_length=len(aqi.INDICATORS),
        description=(
            "By indicator: so2_1h, so2_24h, no2_1h, no2_24h, co_1h, co_24h, o3_1h, o3_8h, pm10_1h, pm10_24h, "
            "pm25_1h, pm25_24h. CO in mg/m³, the others in µg/m³. null: no valid data; an item of the "
            "report left out: not monitored (shown as '/')."
        ),
    )
    units: dict[str, str] | None = Field(
        default=None, max_length=len(aqi.INDICATORS), description="Units by indicator, checked if given."
    )
    report: Literal["hourly", "daily"] = "hourly"
    version: Literal["2012", "2026"] | None = Field(
        default=None, description="HJ 633—2012 or HJ 633—2026; default: the version in force at `time`."
    )
    time: datetime | None = Field(
        default=None,
        description="When the concentrations were observed (with an offset); default: now. Picks the version.",
    )


class LevelRead(BaseModel):
    """An AQI level with its colour and health text (表1)."""

    level: int
    name_zh: str
    name_en: str
    category_zh: str
    category_en: str
    color_zh: str
    color_en: str
    hex: str
    rgb: tuple[int, int, int]
    effect_zh: str
    effect_en: str
    advice_zh: str
    advice_en: str


class ItemRead(BaseModel):
    """One indicator of a report: the concentration used, its IAQI, or "/" / "—"."""

    indicator: str
    pollutant: str
    concentration: float | None
    unit: str
    iaqi: int | None
    published: str
    note: str = ""


class SensitiveRead(BaseModel):
    """The sensitive groups of a pollutant whose IAQI exceeds 100 (HJ 633—2026 表2)."""

    pollutant: str
    groups_zh: str
    groups_en: str


class AqiRead(BaseModel):
    """An AQI report: version, report, AQI (null and published "NA" when not published), level, primary."""

    version: str
    report: str
    aqi: int | None
    published: str
    level: LevelRead | None
    primary_pollutants: list[str]
    items: list[ItemRead]
    sensitive_groups: list[SensitiveRead]


class HourRead(BaseModel):
    """One hour: its end (the hour's label), the 1-hour means by attribute and the report."""

    hour: datetime
    concentrations: dict[str, float | None]
    report: AqiRead | None
    error: str = ""


class StationRead(BaseModel):
    """A station, its district, its latest readings and its hourly AQI now."""

    entity_id: str
    name: str
    lon: float | None
    lat: float | None
    district_code: str | None
    district_zh: str
    district_en: str
    latest: dict[str, float]
    latest_at: datetime | None
    now: HourRead | None


class StationHistoryRead(StationRead):
    """A station with its hourly AQI over the last complete hours."""

    hours: list[HourRead]


class AreaRead(BaseModel):
    """The city or a district: its stations and its hourly AQI now."""

    code: str
    name_zh: str
    name_en: str
    stations: list[str]
    now: HourRead | None


class CityHistoryRead(AreaRead):
    """The city with its hourly AQI over the last complete hours."""

    hours: list[HourRead]


class AirQualityRead(BaseModel):
    """Air quality now: the city (with its trend), the districts and every station."""

    start: datetime
    end: datetime
    city: CityHistoryRead
    districts: list[AreaRead]
    stations: list[StationRead]


def aqi_read(result: aqi.Result) -> AqiRead:
    """The API shape of an AQI report."""
    level = result.level
    return AqiRead(
        version=result.version,
        report=result.report,
        aqi=result.aqi,
        published=result.published,
        level=None if level is None else LevelRead.model_validate(level, from_attributes=True),
        primary_pollutants=list(result.primary),
        items=[
            ItemRead(
                indicator=i.indicator,
                pollutant=i.pollutant,
                concentration=None if i.concentration is None else float(i.concentration),
                unit=aqi.unit_of(i.indicator),
                iaqi=i.iaqi,
                published=(
                    str(i.iaqi)
                    if i.iaqi is not None
                    else aqi.NOT_MONITORED
                    if i.status == "not_monitored"
                    else aqi.MISSING
                ),
                note=i.note,
            )
            for i in result.items
        ],
        sensitive_groups=[
            SensitiveRead(pollutant=p, groups_zh=zh, groups_en=en) for p, zh, en in result.sensitive
        ],
    )


def hour_read(value: svc.HourValue | None) -> HourRead | None:
    """The API shape of one hour's report."""
    if value is None:
        return None
    report = None if value.result is None else aqi_read(value.result)
    return HourRead(
        hour=value.hour, concentrations=dict(value.concentrations), report=report, error=value.error
    )


def station_read(station: svc.Station) -> StationRead:
    """The API shape of a station now."""
    return StationRead(
        entity_id=station.entity_id,
        name=station.name,
        lon=station.lon,
        lat=station.lat,
        district_code=station.district_code,
        district_zh=station.district_zh,
        district_en=station.district_en,
        latest=dict(station.latest),
        latest_at=station.latest_at,
        now=hour_read(station.now),
    )


def station_history_read(station: svc.Station) -> StationHistoryRead:
    """The API shape of a station with its hourly trend."""
    hours = [h for h in (hour_read(v) for v in station.hours) if h is not None]
    return StationHistoryRead(**station_read(station).model_dump(), hours=hours)


def area_read(area: svc.Area) -> AreaRead:
    """The API shape of a district or the city now."""
    return AreaRead(
        code=area.code,
        name_zh=area.name_zh,
        name_en=area.name_en,
        stations=list(area.stations),
        now=hour_read(area.now),
    )


def air_quality_read(picture: svc.AirQuality) -> AirQualityRead:
    """The API shape of the whole picture."""
    hours = [h for h in (hour_read(v) for v in picture.city.hours) if h is not None]
    return AirQualityRead(
        start=picture.start,
        end=picture.end,
        city=CityHistoryRead(**area_read(picture.city).model_dump(), hours=hours),
        districts=[area_read(d) for d in picture.districts],
        stations=[station_read(s) for s in picture.stations],
    )


class StationForecastRead(BaseModel):
    """The platform's forecast of one pollutant at a station: hourly means and the 80 % interval, or why none."""

    attr: str = Field(examples=["pm25"])
    status: series.Status = Field(
        description="missing: no series yet; pending: not examined yet; short: too little history; failed."
    )
    detail: str | None
    history_hours: int | None = Field(description="Hours of history the last run found.")
    needed_hours: int | None = Field(description="Hours of history a forecast needs.")
    model: str | None
    issued_at: datetime | None
    data_end: datetime | None
    hours: list[datetime] = Field(
        description="The end of each forecast hour (the hour before it is forecast)."
    )
    mean: list[float]
    lower_80: list[float]
    upper_80: list[float]
    backtest_mae: list[float] = Field(description="The model's backtest MAE 1, 2, … hours ahead.")


def station_forecast_read(found: series.StationForecast) -> StationForecastRead:
    """The API shape of a station's pollutant forecast."""
    return StationForecastRead(
        attr=found.attr,
        status=found.status,
        detail=found.detail,
        history_hours=found.points,
        needed_hours=found.needed,
        model=found.model,
        issued_at=found.issued_at,
        data_end=found.data_end,
        hours=list(found.hours),
        mean=list(found.mean),
        lower_80=list(found.lower),
        upper_80=list(found.upper),
        backtest_mae=list(found.mae),
    )

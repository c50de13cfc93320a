"""Demo seed and runner: the command centre's roles, the bureaus and utilities the categories and plans route
to, a few events and the emergency resources placed across Mianyang's districts; while the demo serves, a
stream of 12345 tickets and the demo's warnings becoming events.

Running the seed again adds nothing. `run` takes in a ticket every 20–60 s through the normal intake (the
classifier picks the category, routing the department, the geo app the district of the caller's place),
and maps the heavy-pollution warning of the iot demo's scripted pollution episode to 环境污染, filed at once,
so the episode becomes an event for the ecology and environment bureau (市生态环境局).
"""

from __future__ import annotations

import asyncio
import logging
import random

from citybrain.apps.command import emergency, services
from citybrain.apps.command.classifier.corpus import load_corpus
from citybrain.apps.command.schemas import EventDetail, Point, ReportCreate, ResourceCreate, TicketCreate
from citybrain.apps.identity import schemas as identity_schemas
from citybrain.apps.identity import services as identity
from citybrain.sdk import SYSTEM, AppContext

log = logging.getLogger(__name__)
SEED = 12345
# Seconds between two tickets of the stream, drawn uniformly.
STREAM_SECONDS = (20.0, 60.0)
# The demo's warning rules and the categories their warnings become (the environment app's heavy-pollution
# rule, 重污染天气预警, graded from the scripted pollution episode's forecast bulletins).
WARNING_CATEGORIES = {"heavy-pollution": "hotline.pollution"}
# (address, lon, lat): where callers are, across Mianyang's districts and counties.
PLACES = (
    ("涪城区临园路", 104.741, 31.464),
    ("涪城区长虹大道中段", 104.758, 31.470),
    ("涪城区剑南路", 104.700, 31.476),
    ("游仙区富乐路", 104.772, 31.482),
    ("游仙区东津路", 104.766, 31.441),
    ("高新区绵兴东路", 104.690, 31.450),
    ("经开区绵州大道", 104.730, 31.420),
    ("安州区花荄镇", 104.567, 31.535),
    ("江油市太白路", 104.745, 31.778),
    ("三台县潼川镇", 105.094, 31.095),
    ("盐亭县云溪镇", 105.389, 31.208),
    ("梓潼县文昌镇", 105.170, 31.640),
    ("北川羌族自治县永昌镇", 104.468, 31.617),
    ("平武县龙安镇", 104.555, 32.409),
)
SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何罗高林"
# Mobile number prefixes of China's carriers.
PREFIXES = ("133", "135", "136", "138", "139", "150", "152", "158", "177", "180", "186", "189")


class TicketStream:
    """Plausible 12345 tickets: texts of the shipped corpus, callers, places; the same for the same seed."""

    def __init__(self, seed: int = SEED) -> None:
        """Draw from the shipped corpus with a generator of this seed."""
        self._random = random.Random(seed)
        self._texts = sorted({e.text for e in load_corpus()})

    def next(self) -> TicketCreate:
        """The next ticket."""
        draw = self._random
        address, lon, lat = draw.choice(PLACES)
        return TicketCreate(
            caller_name=draw.choice(SURNAMES) + draw.choice(("先生", "女士")),
            caller_phone=draw.choice(PREFIXES) + f"{draw.randrange(10**8):08d}",
            content=draw.choice(self._texts),
            location=Point(
                lon=round(lon + draw.uniform(-0.004, 0.004), 6),
                lat=round(lat + draw.uniform(-0.004, 0.004), 6),
            ),
            address=address,
        )

    def pause(self) -> float:
        """Seconds until the next ticket."""
        return self._random.uniform(*STREAM_SECONDS)


def take_next(ctx: AppContext, stream: TicketStream) -> EventDetail:
    """Take the stream's next ticket through the normal intake (classified, located and routed)."""
    return services.take_ticket(ctx, SYSTEM, stream.next())


async def run(ctx: AppContext, *, seed: int = SEED) -> None:
    """Map the demo's warnings to categories, then take in a 12345 ticket every 20–60 s until cancelled."""
    services.use_demo_warnings(ctx, WARNING_CATEGORIES)
    stream = TicketStream(seed)
    while True:
        await asyncio.sleep(stream.pause())
        try:
            detail = await asyncio.to_thread(take_next, ctx, stream)
            log.info("12345 ticket %s taken in: %s", detail.number, detail.category or "waiting for a person")
        except Exception:
            log.exception("the demo ticket could not be taken in; trying again with the next")


# (code, name_zh, name_en): responsible units the identity demo does not create.
UNITS = (
    ("zjj", "市住房和城乡建设局", "Housing and Urban-Rural Development Bureau"),
    ("jyj", "市教育和体育局", "Education and Sports Bureau"),
    ("scjgj", "市市场监督管理局", "Market Regulation Administration"),
    ("jtj", "市交通运输局", "Transport Bureau"),
    ("swjt", "市水务集团", "Water Group"),
    ("gdgs", "国网绵阳供电公司", "State Grid Mianyang Power Supply"),
    ("rqgs", "市燃气公司", "Gas Company"),
    ("xfzd", "市消防救援支队", "Fire and Rescue Detachment"),
    ("qxj", "市气象局", "Meteorological Bureau"),
)
# (name, kind, department code, lon, lat, capacity, unit, address): the central city's and the counties'.
RESOURCES = (
    ("市消防救援支队特勤站", "team", "xfzd", 104.741, 31.468, 30, "人", "涪城区临园路"),
    ("游仙区消防救援站", "team", "xfzd", 104.770, 31.478, 20, "人", "游仙区富乐路"),
    ("高新区消防救援站", "team", "xfzd", 104.690, 31.450, 20, "人", "高新区绵兴东路"),
    ("市防汛抢险突击队", "team", "yjj", 104.735, 31.490, 50, "人", "涪城区长虹大道"),
    ("市城管排水抢险队", "team", "cgzf", 104.720, 31.470, 25, "人", "涪城区一环路西段"),
    ("燃气抢修队", "team", "rqgs", 104.755, 31.450, 12, "人", "游仙区东津路"),
    ("市中心医院急救车", "vehicle", "wjw", 104.748, 31.476, 3, "辆", "涪城区常家巷"),
    ("排水抢险车", "vehicle", "swjt", 104.716, 31.456, 3, "辆", "涪城区一环路南段"),
    ("大流量移动泵车", "vehicle", "slj", 104.760, 31.4625, 2, "台", "游仙区剑门路"),
    ("道路清障救援车", "vehicle", "jtj", 104.693, 31.447, 2, "辆", "高新区九洲大道"),
    ("人民公园应急避难场所", "shelter", "510703", 104.745, 31.463, 5000, "人", "涪城区人民公园"),
    ("富乐山应急避难场所", "shelter", "510704", 104.777, 31.483, 8000, "人", "游仙区富乐山公园"),
    ("南郊应急避难场所", "shelter", "510703", 104.730, 31.420, 3000, "人", "经开区绵州大道"),
    ("市级防汛物资储备库（编织袋）", "supply", "yjj", 104.700, 31.476, 20000, "条", "涪城区剑南路"),
    ("救灾物资储备库（帐篷）", "supply", "yjj", 104.766, 31.441, 500, "顶", "游仙区东津路"),
    ("江油市消防救援大队", "team", "xfzd", 104.745, 31.778, 20, "人", "江油市"),
    ("三台县应急救援队", "team", "510722", 105.094, 31.095, 30, "人", "三台县"),
    ("安州区防汛物资仓库（编织袋）", "supply", "510705", 104.567, 31.535, 5000, "条", "安州区"),
    ("北川县应急避难场所", "shelter", "510726", 104.468, 31.617, 2000, "人", "北川羌族自治县"),
    ("盐亭县急救站", "vehicle", "wjw", 105.389, 31.208, 2, "辆", "盐亭县"),
    ("梓潼县应急救援队", "team", "510725", 105.170, 31.640, 25, "人", "梓潼县"),
    ("平武县救灾物资储备点（帐篷）", "supply", "510727", 104.555, 32.409, 200, "顶", "平武县"),
)


def seed_resources(ctx: AppContext) -> int:
    """Place the emergency resources when there are none yet; return how many were created."""
    if emergency.list_resources(ctx, SYSTEM, limit=1).total:
        return 0
    ids = {code: d.id for code, d in services.departments(ctx).items()}
    for name, kind, dept, lon, lat, capacity, unit, address in RESOURCES:
        emergency.create_resource(
            ctx,
            SYSTEM,
            ResourceCreate(
                name=name,
                kind=kind,
                department_id=ids.get(dept),
                location=Point(lon=lon, lat=lat),
                address=address,
                capacity=capacity,
                unit=unit,
            ),
        )
    return len(RESOURCES)


def seed(ctx: AppContext) -> list[str]:
    """Create the roles, the responsible units, the emergency resources and, on an empty database, events."""
    services.ensure_roles(ctx)
    have = services.departments(ctx)
    root = have.get("510700")
    for code, name_zh, name_en in UNITS:
        if code not in have:
            identity.create_department(
                ctx,
                SYSTEM,
                identity_schemas.DepartmentCreate(
                    code=code, name_zh=name_zh, name_en=name_en, parent_id=root.id if root else None
                ),
            )
    seed_resources(ctx)
    if services.list_events(ctx, SYSTEM, limit=1).total:
        return []
    services.take_ticket(
        ctx,
        SYSTEM,
        TicketCreate(
            caller_name="张先生",
            caller_phone="13800001234",
            content="临园路小区附近KTV每晚噪声扰民到凌晨",
            category="hotline.noise",
            location={"lon": 104.741, "lat": 31.464},
            address="涪城区临园路",
        ),
    )
    services.report(
        ctx,
        SYSTEM,
        ReportCreate(
            category="part.manhole_cover",
            description="人行道雨水井盖缺失，有行人跌落风险",
            location={"lon": 104.758, "lat": 31.470},
            address="涪城区长虹大道中段",
        ),
    )
    services.report(
        ctx,
        SYSTEM,
        ReportCreate(
            category="event.street_vending",
            description="早市摊贩占用人行道经营",
            location={"lon": 104.772, "lat": 31.482},
            address="游仙区富乐路",
        ),
    )
    return []

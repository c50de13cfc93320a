"""Demo seed: the command centre's roles, the bureaus and utilities the categories route to, a few events.

Running the seed again adds nothing.
"""

from __future__ import annotations

from citybrain.apps.command import services
from citybrain.apps.command.schemas import ReportCreate, TicketCreate
from citybrain.apps.identity import schemas as identity_schemas
from citybrain.apps.identity import services as identity
from citybrain.sdk import SYSTEM, AppContext

# (code, name_zh, name_en): responsible units the identity demo does not create.
UNITS = (
    ("zjj", "市住房和城乡建设局", "Housing and Urban-Rural Development Bureau"),
    ("jyj", "市教育和体育局", "Education and Sports Bureau"),
    ("scjgj", "市市场监督管理局", "Market Regulation Administration"),
    ("jtj", "市交通运输局", "Transport Bureau"),
    ("swjt", "市水务集团", "Water Group"),
    ("gdgs", "国网绵阳供电公司", "State Grid Mianyang Power Supply"),
    ("rqgs", "市燃气公司", "Gas Company"),
)


def seed(ctx: AppContext) -> list[str]:
    """Create the roles, the responsible units and, on an empty database, three sample events."""
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

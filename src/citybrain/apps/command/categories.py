"""The command app's own categories: the digital city-management tree and the 12345 hotline's classes.

部件/事件 and their top classes follow GB/T 30428 / CJ/T 214 (standards notes §3.3). Time limits are local
rules, not national ones (the part of GB/T 30428 with 立案/处置/结案 limits and the 12345 rules differ by
city, §3.1 and §4.2); every limit can be overridden with CITYBRAIN_COMMAND_LIMITS. Departments are codes of
the identity app's org tree; a district override routes a category to the district's own government.
"""

from __future__ import annotations

from citybrain.apps.command.taxonomy import Category

# Mianyang's districts and counties (GB/T 2260 codes): street-level work goes to their governments.
DISTRICTS = ("510703", "510704", "510705", "510781", "510722", "510723", "510725", "510726", "510727")
BY_DISTRICT = {code: code for code in DISTRICTS}
PART = ("部件", "Components")
EVENT = ("事件", "Events")
HOTLINE = ("12345热线", "12345 hotline")
# 数字城管 limits (a common local rule): 立案 and 派遣 within 1 working hour each.
CITY = {"file": "1h", "dispatch": "1h"}
# 12345 (§4.2): 即时转办 within 2 working hours; 水电气 answered within a day (北京 draft: 24 h);
# 咨询 within 3 working days and 投诉举报 within 13 working days (a municipal rule).
TRANSFER = "2h"


def _part(
    code: str, zh: str, en: str, group: tuple[str, str], handle: str, dept: str, **kw: object
) -> Category:
    return Category(
        code=f"part.{code}",
        name_zh=zh,
        name_en=en,
        workflow="city",
        group_zh=(PART[0], group[0]),
        group_en=(PART[1], group[1]),
        limits={**CITY, "handle": handle},
        department=dept,
        **kw,  # type: ignore[arg-type]
    )


def _event(
    code: str, zh: str, en: str, group: tuple[str, str], handle: str, dept: str, **kw: object
) -> Category:
    return Category(
        code=f"event.{code}",
        name_zh=zh,
        name_en=en,
        workflow="city",
        group_zh=(EVENT[0], group[0]),
        group_en=(EVENT[1], group[1]),
        limits={**CITY, "handle": handle},
        department=dept,
        **kw,  # type: ignore[arg-type]
    )


def _hotline(code: str, zh: str, en: str, handle: str, dept: str, **kw: object) -> Category:
    return Category(
        code=f"hotline.{code}",
        name_zh=zh,
        name_en=en,
        workflow="hotline",
        group_zh=(HOTLINE[0],),
        group_en=(HOTLINE[1],),
        limits={"dispatch": TRANSFER, "handle": handle},
        department=dept,
        **kw,  # type: ignore[arg-type]
    )


UTILITIES = ("公用设施类", "Public utilities")
ROADS = ("道路交通类", "Roads and traffic")
CITYSCAPE = ("市容环境类", "City appearance and environment")
GREEN = ("园林绿化类", "Parks and greening")
ADS = ("宣传广告类", "Publicity and advertising")
WORKS = ("施工管理类", "Construction management")
SUDDEN = ("突发事件类", "Sudden events")
STREET = ("街面秩序类", "Street order")

CATEGORIES = (
    _part("manhole_cover", "井盖破损或缺失", "Broken or missing manhole cover", UTILITIES, "4h", "cgzf"),
    _part("street_lamp", "路灯不亮或损坏", "Street lamp out or damaged", UTILITIES, "2d", "cgzf"),
    _part(
        "litter_bin",
        "垃圾箱破损或满溢",
        "Litter bin damaged or overflowing",
        CITYSCAPE,
        "4h",
        "cgzf",
        districts=BY_DISTRICT,
    ),
    _part("public_toilet", "公厕设施损坏", "Public toilet facilities damaged", CITYSCAPE, "2d", "cgzf"),
    _part("road_surface", "道路破损坑洼", "Damaged road surface or potholes", ROADS, "3d", "zjj"),
    _part("guardrail", "护栏、隔离栏损坏", "Damaged guardrail or barrier", ROADS, "2d", "zjj"),
    _part("traffic_sign", "交通标志、信号灯损坏", "Damaged traffic sign or signal", ROADS, "1d", "gaj-jj"),
    _part("green_space", "绿地、行道树损毁", "Damaged green space or street trees", GREEN, "3d", "cgzf"),
    _event(
        "exposed_garbage",
        "暴露垃圾、垃圾乱倒",
        "Exposed or dumped garbage",
        CITYSCAPE,
        "4h",
        "cgzf",
        districts=BY_DISTRICT,
    ),
    _event(
        "illegal_ads",
        "非法小广告、乱张贴",
        "Illegal small ads and posting",
        ADS,
        "1d",
        "cgzf",
        districts=BY_DISTRICT,
    ),
    _event(
        "construction",
        "施工扰民、渣土撒漏、工地围挡",
        "Construction nuisance, spilled muck, site hoardings",
        WORKS,
        "1d",
        "zjj",
    ),
    _event("waterlogging", "道路积水、内涝", "Road waterlogging or flooding", SUDDEN, "2h", "cgzf"),
    _event(
        "street_vending",
        "占道经营、流动摊贩",
        "Street vending and road occupation",
        STREET,
        "4h",
        "cgzf",
        districts=BY_DISTRICT,
    ),
    _event(
        "bike_parking",
        "共享单车、车辆乱停放",
        "Disorderly parked bikes and vehicles",
        STREET,
        "4h",
        "cgzf",
        districts=BY_DISTRICT,
    ),
    _hotline(
        "noise",
        "噪声扰民（社会生活、娱乐场所）",
        "Noise nuisance (daily life, entertainment venues)",
        "13d",
        "sthj",
    ),
    _hotline(
        "water_supply", "供水（停水、水压、水质）", "Water supply (outage, pressure, quality)", "1d", "swjt"
    ),
    _hotline("power_supply", "供电（停电、电压）", "Power supply (outage, voltage)", "1d", "gdgs"),
    _hotline("gas", "燃气（停气、燃气安全）", "Gas (outage, gas safety)", "1d", "rqgs"),
    _hotline("public_transport", "公共交通（公交、出租车）", "Public transport (buses, taxis)", "13d", "jtj"),
    _hotline("social_insurance", "社保医保", "Social and medical insurance", "13d", "rsj"),
    _hotline(
        "education", "教育（入学、收费、校外培训）", "Education (enrolment, fees, tutoring)", "13d", "jyj"
    ),
    _hotline("property_management", "物业管理", "Property management", "13d", "zjj"),
    _hotline("wage_arrears", "拖欠工资、劳动纠纷", "Wage arrears and labour disputes", "13d", "rsj"),
    _hotline(
        "consumer_rights",
        "消费维权（价格、质量、退款）",
        "Consumer rights (prices, quality, refunds)",
        "13d",
        "scjgj",
    ),
    _hotline("food_safety", "食品安全", "Food safety", "13d", "scjgj"),
    _hotline(
        "pollution",
        "环境污染（废气、污水、油烟）",
        "Environmental pollution (exhaust, sewage, cooking fumes)",
        "13d",
        "sthj",
    ),
    _hotline("policy_enquiry", "政策咨询", "Policy enquiry", "3d", "zwfw"),
)

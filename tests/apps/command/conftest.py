"""Fixtures of the command tests: the apps it needs, the departments of the routing list and the posts."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from fastapi import FastAPI

from citybrain.apps.command import workflows as wf
from citybrain.apps.identity import schemas, services
from citybrain.core.apps import discover
from citybrain.core.asgi import create_app
from citybrain.core.context import AppContext
from citybrain.core.permissions import ALL, SYSTEM, Actor, Scope
from citybrain.core.settings import Settings
from tests.conftest import Seeded

LABELS = ("identity", "context", "geo", "warning", "command")
CITY_HALL = (104.741, 31.464)  # in 涪城区 (510703)


@pytest.fixture
def app(settings: Settings) -> FastAPI:
    """The platform with the command app and the apps it needs."""
    return create_app(settings, [spec for spec in discover() if spec.label in LABELS])


@dataclass
class Org:
    """Department ids and actors for each post."""

    sthj: int
    cgzf: int
    district: int
    operator: Actor
    leader: Actor
    dispatcher: Actor
    inspector: Actor
    handler: Actor  # 市生态环境局
    cg_handler: Actor  # 市城市管理行政执法局
    district_handler: Actor  # 涪城区


def person(uid: int, dept: int, name: str, grants: dict[str, Scope]) -> Actor:
    """A signed-in user holding these grants."""
    return Actor(kind="user", id=uid, username=name, display_name=name, department_id=dept, grants=grants)


@pytest.fixture
def org(ctx: AppContext, seeded: Seeded) -> Org:
    """The bureaus the categories route to, and one actor per post (city-wide or in a department)."""

    def dept(code: str, name: str) -> int:
        return services.create_department(
            ctx, SYSTEM, schemas.DepartmentCreate(code=code, name_zh=name, parent_id=seeded.root)
        ).id

    sthj, cgzf = dept("sthj", "市生态环境局"), dept("cgzf", "市城市管理行政执法局")

    def city(*perms: str) -> dict[str, Scope]:
        return dict.fromkeys((wf.READ, *perms), ALL)

    def local(dept_id: int) -> dict[str, Scope]:
        return dict.fromkeys((wf.READ, wf.HANDLE, wf.REPORT), frozenset({dept_id}))

    return Org(
        sthj=sthj,
        cgzf=cgzf,
        district=seeded.district,
        operator=person(11, seeded.city_dept, "受理员", city(wf.TICKET, wf.VISIT, wf.CALLER, wf.REPORT)),
        leader=person(12, seeded.city_dept, "值班长", city(wf.FILE, wf.CLOSE, wf.SUPERVISE, wf.CALLER)),
        dispatcher=person(13, seeded.city_dept, "派遣员", city(wf.DISPATCH, wf.SUPERVISE)),
        inspector=person(14, seeded.city_dept, "监督员", city(wf.REPORT, wf.VERIFY)),
        handler=person(15, sthj, "环保处置", local(sthj)),
        cg_handler=person(16, cgzf, "城管处置", local(cgzf)),
        district_handler=person(17, seeded.district, "涪城处置", local(seeded.district)),
    )

"""The audit ledger: every audited write is chained; verify names the first tampered record."""

import threading

import pytest
from fastapi import FastAPI
from sqlalchemy import delete, func, select, text, update

from citybrain.apps.identity.models import Department
from citybrain.core import ledger
from citybrain.core.apps import discover
from citybrain.core.asgi import create_app
from citybrain.core.context import AppContext
from citybrain.core.db import WriteOutsideService
from citybrain.core.ledger import LedgerRecord
from citybrain.core.permissions import SYSTEM, Actor
from citybrain.core.settings import Settings


@pytest.fixture
def app(settings: Settings) -> FastAPI:
    """The platform with the identity app only: other apps record writes of their own when they start."""
    return create_app(settings, [spec for spec in discover() if spec.label == "identity"])


def write_departments(ctx: AppContext, count: int) -> None:
    for i in range(count):
        with ctx.uow(SYSTEM, "test.department.create") as uow:
            uow.session.add(Department(code=f"d{i}", name_zh=f"部门{i}"))


def records(ctx: AppContext) -> list[LedgerRecord]:
    with ctx.read() as session:
        return list(session.scalars(select(LedgerRecord).order_by(LedgerRecord.seq)))


def test_every_audited_write_appends_a_chained_record(ctx: AppContext) -> None:
    actor = Actor(kind="user", id=7, username="u7")
    with ctx.uow(actor, "test.department.create") as uow:
        dept = Department(code="a", name_zh="甲")
        uow.session.add(dept)
    with ctx.uow(actor, "test.department.update") as uow:
        uow.session.get_one(Department, dept.id).name_zh = "乙"
    with ctx.uow(actor, "test.department.delete") as uow:
        uow.session.delete(uow.session.get_one(Department, dept.id))
    rows = records(ctx)
    assert [(r.op, r.action, r.actor, r.obj) for r in rows] == [
        ("create", "test.department.create", "user:7", f"identity_department:{dept.id}"),
        ("update", "test.department.update", "user:7", f"identity_department:{dept.id}"),
        ("delete", "test.department.delete", "user:7", f"identity_department:{dept.id}"),
    ]
    assert rows[0].before == "" and rows[0].after
    assert rows[1].before == rows[0].after and rows[1].after != rows[1].before
    assert rows[2].before == rows[1].after and rows[2].after == ""
    assert rows[0].prev_hash == ledger.GENESIS
    assert [r.prev_hash for r in rows[1:]] == [r.hash for r in rows[:-1]]
    with ctx.read() as session:
        verdict = ledger.verify(session)
    assert verdict.ok and verdict.checked == 3


def test_a_failed_service_call_leaves_no_rows_and_no_record(ctx: AppContext) -> None:
    with pytest.raises(RuntimeError), ctx.uow(SYSTEM, "test.department.create") as uow:
        uow.session.add(Department(code="x", name_zh="将回滚"))
        uow.session.flush()
        raise RuntimeError("boom")
    with ctx.read() as session:
        assert session.scalar(select(func.count()).select_from(Department)) == 0
        assert session.scalar(select(func.count()).select_from(LedgerRecord)) == 0


def test_writing_an_audited_table_outside_a_service_is_refused(ctx: AppContext) -> None:
    with ctx.read() as session:
        session.add(Department(code="sneaky", name_zh="绕过"))
        with pytest.raises(WriteOutsideService):
            session.flush()


def _tamper(ctx: AppContext, sql: str, **params: object) -> None:
    with ctx.db.engine.begin() as conn:
        conn.execute(text(sql), params)


def _verify(ctx: AppContext) -> ledger.Verdict:
    with ctx.read() as session:
        return ledger.verify(session)


def test_verify_names_an_edited_record(ctx: AppContext) -> None:
    write_departments(ctx, 5)
    _tamper(ctx, "UPDATE core_ledger SET actor = 'user:999' WHERE seq = 3")
    verdict = _verify(ctx)
    assert not verdict.ok and verdict.seq == 3 and "edited" in verdict.problem
    assert verdict.checked == 2


def test_verify_names_a_deleted_record(ctx: AppContext) -> None:
    write_departments(ctx, 5)
    _tamper(ctx, "DELETE FROM core_ledger WHERE seq = 3")
    verdict = _verify(ctx)
    assert not verdict.ok and verdict.seq == 4 and "deleted" in verdict.problem


def test_verify_names_reordered_records(ctx: AppContext) -> None:
    write_departments(ctx, 5)
    _tamper(ctx, "UPDATE core_ledger SET seq = -1 WHERE seq = 2")
    _tamper(ctx, "UPDATE core_ledger SET seq = 2 WHERE seq = 3")
    _tamper(ctx, "UPDATE core_ledger SET seq = 3 WHERE seq = -1")
    verdict = _verify(ctx)
    assert not verdict.ok and verdict.seq == 2 and "reordered" in verdict.problem


def test_verify_notices_the_newest_records_deleted(ctx: AppContext) -> None:
    write_departments(ctx, 4)
    _tamper(ctx, "DELETE FROM core_ledger WHERE seq = 4")
    verdict = _verify(ctx)
    assert not verdict.ok and "deleted" in verdict.problem and verdict.seq == 4


def test_concurrent_writers_keep_one_unbroken_chain(ctx: AppContext) -> None:
    errors: list[BaseException] = []

    def worker(n: int) -> None:
        try:
            for i in range(8):
                with ctx.uow(SYSTEM, "test.department.create") as uow:
                    uow.session.add(Department(code=f"t{n}-{i}", name_zh="并发"))
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    verdict = _verify(ctx)
    assert verdict.ok and verdict.checked == 32


def test_ledger_rows_cannot_be_changed_through_the_orm_without_detection(ctx: AppContext) -> None:
    write_departments(ctx, 2)
    with ctx.db.write_sessions.begin() as session:
        session.execute(update(LedgerRecord).where(LedgerRecord.seq == 1).values(after="0" * 64))
    assert not _verify(ctx).ok
    with ctx.db.write_sessions.begin() as session:
        session.execute(delete(LedgerRecord))
    assert not _verify(ctx).ok


def test_verify_catches_an_edit_whose_hash_was_recomputed(ctx: AppContext) -> None:
    write_departments(ctx, 4)
    rows = records(ctx)
    forged = rows[1]
    new_hash = ledger.chain_hash(
        forged.recorded_at,
        "user:999",
        forged.action,
        forged.op,
        forged.obj,
        forged.before,
        forged.after,
        forged.prev_hash,
    )
    _tamper(ctx, "UPDATE core_ledger SET actor = 'user:999', hash = :h WHERE seq = 2", h=new_hash)
    verdict = _verify(ctx)
    assert not verdict.ok and verdict.seq == 3 and "#2 was edited" in verdict.problem

"""The append-only, hash-chained audit ledger and its verification."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Connection, Index, String, Table, insert, select, text, update
from sqlalchemy.orm import Mapped, Session, mapped_column

from citybrain.core.db import Base, bulk_insert, execute_raw, json_insert_sql, json_rows, uses_copy, utcnow

GENESIS = "0" * 64
# Key of the PostgreSQL advisory lock that serialises appends to the chain.
_PG_LOCK_KEY = 0x0C17B2A1


class LedgerRecord(Base):
    """One audited write: who did what to which object, with digests of the state before and after."""

    __tablename__ = "core_ledger"
    __table_args__ = (Index("ix_core_ledger_hash", "hash"),)

    seq: Mapped[int] = mapped_column(primary_key=True)
    recorded_at: Mapped[datetime] = mapped_column(default=utcnow)
    actor: Mapped[str] = mapped_column(String(120))
    action: Mapped[str] = mapped_column(String(120))
    op: Mapped[str] = mapped_column(String(20))
    obj: Mapped[str] = mapped_column(String(200), index=True)
    before: Mapped[str] = mapped_column(String(64))
    after: Mapped[str] = mapped_column(String(64))
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64))


class LedgerHead(Base):
    """The last record's sequence number and hash, so deleting the newest records is detected too."""

    __tablename__ = "core_ledger_head"

    id: Mapped[int] = mapped_column(primary_key=True)
    seq: Mapped[int]
    hash: Mapped[str] = mapped_column(String(64))


def chain_hash(
    recorded_at: datetime, actor: str, action: str, op: str, obj: str, before: str, after: str, prev_hash: str
) -> str:
    """SHA-256 over a record's fields and its predecessor's hash."""
    fields = [recorded_at.isoformat(), actor, action, op, obj, before, after, prev_hash]
    return hashlib.sha256(json.dumps(fields, ensure_ascii=False).encode()).hexdigest()


@dataclass(frozen=True)
class Entry:
    """A ledger record waiting to be appended: who did what to which object, and digests of the state."""

    actor: str
    action: str
    op: str
    obj: str
    before: str
    after: str


Inserts = Sequence[tuple[Table, Sequence[Mapping[str, Any]]]]


def append_many(conn: Connection, entries: Sequence[Entry], also: Inserts = ()) -> int:
    """Append records (and the transaction's further rows `also`) locking the chain once; return the last seq."""
    # On PostgreSQL the records, the head and the further rows (the outbox's, say) go in one statement.
    head_query = select(LedgerHead.seq, LedgerHead.hash).where(LedgerHead.id == 1)
    if not entries:  # nothing to chain: take no lock, so transactions without records never wait
        _insert_all(conn, also)
        current = conn.execute(head_query).first()
        return current.seq if current else 0
    if conn.dialect.name == "postgresql":
        # Locking the head row serialises appends (and re-reads the newest head once the lock is held);
        # before the first record there is no row to lock, so an advisory lock does it.
        head = conn.execute(head_query.with_for_update()).first()
        if head is None:
            conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _PG_LOCK_KEY})
            head = conn.execute(head_query.with_for_update()).first()
    else:
        head = conn.execute(head_query).first()
    seq, prev_hash = (head.seq, head.hash) if head else (0, GENESIS)
    # Microsecond precision survives every backend, so the hash can be recomputed from stored values.
    recorded_at = utcnow()
    rows = []
    for e in entries:
        seq += 1
        digest = chain_hash(recorded_at, e.actor, e.action, e.op, e.obj, e.before, e.after, prev_hash)
        rows.append(
            {
                "seq": seq,
                "recorded_at": recorded_at,
                "actor": e.actor,
                "action": e.action,
                "op": e.op,
                "obj": e.obj,
                "before": e.before,
                "after": e.after,
                "prev_hash": prev_hash,
                "hash": digest,
            }
        )
        prev_hash = digest
    records = cast(Table, LedgerRecord.__table__)
    if head and uses_copy(conn):
        _write_at_once(conn, [(records, rows), *also], seq, prev_hash)
        return seq
    _insert_all(conn, [(records, rows), *also])
    if head:
        conn.execute(update(LedgerHead).where(LedgerHead.id == 1).values(seq=seq, hash=prev_hash))
    else:
        conn.execute(insert(LedgerHead).values(id=1, seq=seq, hash=prev_hash))
    return seq


def _insert_all(conn: Connection, inserts: Inserts) -> None:
    for table, rows in inserts:
        bulk_insert(conn, table, rows)


def _write_at_once(conn: Connection, inserts: Inserts, seq: int, last_hash: str) -> None:
    """PostgreSQL: every insert and the head's move in one statement (one round trip)."""
    parts, params = [], {"seq": seq, "hash": last_hash}
    for n, (table, rows) in enumerate(inserts):
        if rows:
            names = list(rows[0])
            parts.append(f"i{n} AS ({json_insert_sql(table, names, f'p{n}', conn.dialect)})")
            params[f"p{n}"] = json_rows(rows, names)
    execute_raw(
        conn,
        f"WITH {', '.join(parts)} UPDATE core_ledger_head SET seq = %(seq)s, hash = %(hash)s WHERE id = 1",  # noqa: S608
        params,
    )


@dataclass(frozen=True)
class Verdict:
    """The outcome of walking the chain."""

    ok: bool
    checked: int
    seq: int | None = None
    problem: str = ""

    def __str__(self) -> str:
        """A one-line human summary."""
        if self.ok:
            return f"ledger intact: {self.checked} records verified"
        return (
            f"ledger broken at record #{self.seq}: {self.problem} ({self.checked} records verified before it)"
        )


def verify(session: Session, batch: int = 5000) -> Verdict:
    """Walk the chain in order and name the first edited, deleted or reordered record."""
    prev_hash, prev_seq, checked = GENESIS, 0, 0
    # The head first: records appended after it (committed while we walk) are not part of this check.
    head = session.execute(select(LedgerHead.seq, LedgerHead.hash).where(LedgerHead.id == 1)).first()
    query = select(LedgerRecord).order_by(LedgerRecord.seq)
    if head is not None:
        query = query.where(LedgerRecord.seq <= head.seq)
    rows = session.execute(query.execution_options(yield_per=batch))
    for rec in rows.scalars():
        expected = chain_hash(
            rec.recorded_at, rec.actor, rec.action, rec.op, rec.obj, rec.before, rec.after, rec.prev_hash
        )
        if expected != rec.hash:
            return Verdict(False, checked, rec.seq, "edited: its content no longer matches its hash")
        if rec.prev_hash != prev_hash:
            where = session.scalar(select(LedgerRecord.seq).where(LedgerRecord.hash == rec.prev_hash))
            if where is not None and where != prev_seq:
                problem = (
                    f"reordered: it follows record #{where} in the chain but is stored after #{prev_seq}"
                )
                return Verdict(False, checked, rec.seq, problem)
            if rec.seq == prev_seq + 1 and prev_seq > 0:
                problem = (
                    f"its link to record #{prev_seq} is broken: #{prev_seq} was edited and its hash "
                    "recomputed, or a record between them was deleted and the rest renumbered"
                )
                return Verdict(False, checked, rec.seq, problem)
            problem = f"deleted: the record that preceded it in the chain (after #{prev_seq}) is missing"
            return Verdict(False, checked, rec.seq, problem)
        prev_hash, prev_seq, checked = rec.hash, rec.seq, checked + 1
    if head is not None and (head.seq, head.hash) != (prev_seq, prev_hash):
        return Verdict(
            False,
            checked,
            prev_seq + 1,
            f"deleted: the chain ends at #{prev_seq} but the head records #{head.seq}",
        )
    return Verdict(True, checked)

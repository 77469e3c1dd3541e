"""The organisation rule for one object: every surface looks up a file, job, batch... by id through
:func:`owned`, so another organisation's object answers exactly as an absent one (404)."""

from __future__ import annotations

from sqlalchemy import select

from selftune.api.errors import not_found


def owned(session, table, org: str, id_: str, kind: str, param: str | None = None, lock: bool = False):
    """Row ``id_`` of ``table`` if it belongs to ``org``, else the 404 of an absent ``kind``. ``lock``: held
    until the transaction ends (SELECT ... FOR UPDATE), for a change that must not race another."""
    query = select(table).where(table.id == id_, table.org == org)
    row = session.scalar(query.with_for_update() if lock else query)
    if row is None:
        raise not_found(kind, id_, param=param)
    return row

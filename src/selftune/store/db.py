"""The database: one engine per process, schema brought to the newest Alembic revision on open.

SQLite (the default, a file in SELFTUNE_HOME) runs in WAL mode so the API can read while the worker
writes, and a writer waits up to :data:`BUSY_TIMEOUT_SECONDS` for the write lock instead of failing with
"database is locked"; past that, :class:`DatabaseBusy` (a 503 with Retry-After from the API, never a 500).
PostgreSQL (SELFTUNE_DATABASE_URL) lets workers on several machines share the queue.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, sessionmaker

MIGRATIONS = Path(__file__).parent / "migrations"
_PG_MIGRATION_LOCK = 0x5E1F7  # pg_advisory_lock key: one process migrates at a time
BUSY_TIMEOUT_SECONDS = 30  # how long a SQLite writer waits while another connection or process writes


class DatabaseBusy(Exception):
    """SQLite's write lock stayed taken for longer than the busy timeout: worth trying again shortly."""


class Database:
    def __init__(self, url: str):
        self.url = _normalise(url)
        self.engine = _engine(self.url)
        self.sessions = sessionmaker(self.engine, expire_on_commit=False)
        self.is_sqlite = self.engine.dialect.name == "sqlite"
        migrate(self.engine)

    @contextlib.contextmanager
    def transaction(self) -> Iterator[Session]:
        """One unit of work: committed as a whole on clean exit, rolled back on any error."""
        try:
            with self.sessions() as session, session.begin():
                yield session
        except OperationalError as exc:
            if not _locked(exc):
                raise
            raise DatabaseBusy(f"The database is busy: another process held its write lock for more than "
                               f"{BUSY_TIMEOUT_SECONDS} s. Try again shortly.") from exc

    def dispose(self) -> None:
        self.engine.dispose()


def _locked(exc: OperationalError) -> bool:
    """SQLite's SQLITE_BUSY / SQLITE_LOCKED, as sqlite3 words them."""
    return any(words in str(exc.orig) for words in ("database is locked", "database is busy",
                                                    "database table is locked"))


def _normalise(url: str) -> str:
    # postgresql:// means psycopg2 to SQLAlchemy; selftune ships the maintained psycopg 3 driver
    if url.startswith("postgresql://") or url.startswith("postgres://"):
        return "postgresql+psycopg://" + url.split("://", 1)[1]
    return url


def _engine(url: str) -> Engine:
    if url.startswith("sqlite"):
        path = url.split("///", 1)[-1]
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"timeout": BUSY_TIMEOUT_SECONDS, "check_same_thread": False})

        @event.listens_for(engine, "connect")
        def _pragmas(dbapi_connection, _record):  # every new connection, not just the first
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")  # WAL + NORMAL: durable at each checkpoint, fast
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute(f"PRAGMA busy_timeout={int(BUSY_TIMEOUT_SECONDS * 1000)}")
            cursor.close()

        return engine
    return create_engine(url, pool_pre_ping=True)


def migrate(engine: Engine) -> None:
    """Upgrade the schema to head, one process at a time (several servers and workers may start at once)."""
    from alembic import command
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    with _migration_lock(engine), engine.begin() as connection:
        if engine.dialect.name == "postgresql":
            connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _PG_MIGRATION_LOCK})
        config.attributes["connection"] = connection
        command.upgrade(config, "head")


def _migration_lock(engine: Engine):
    """SQLite has no advisory locks: a lock file beside the database serialises migrations."""
    database = engine.url.database
    if engine.dialect.name != "sqlite" or not database or database == ":memory:":
        return contextlib.nullcontext()
    from filelock import FileLock

    return FileLock(database + ".migrate.lock")

"""Blob storage (atomic, size-limited, ids only) and the database (migrated on open, by several at once)."""

import io
import threading

import pytest
from sqlalchemy import inspect

from selftune.config import Settings
from selftune.store.blobs import BlobStore, TooLarge
from selftune.store.db import Database


def test_blob_put_is_atomic_and_limited(tmp_path):
    blobs = BlobStore(tmp_path)
    size, sha = blobs.put("file-abc", io.BytesIO(b"hello"), limit=10)
    assert (size, blobs.path("file-abc").read_bytes()) == (5, b"hello")
    assert sha == "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824"
    with pytest.raises(TooLarge):
        blobs.put("file-big", io.BytesIO(b"x" * 11), limit=10)
    assert sorted(p.name for p in tmp_path.rglob("*") if p.is_file()) == ["file-abc"]  # no temp file left


@pytest.mark.parametrize("bad", ["../etc/passwd", "a/b", "", "x" * 65, "file-..", "name with space"])
def test_blob_paths_come_only_from_ids(tmp_path, bad):
    with pytest.raises(ValueError):
        BlobStore(tmp_path).path(bad)


def test_database_migrates_once_when_opened_concurrently(tmp_path):
    url = f"sqlite:///{tmp_path / 'selftune.db'}"
    errors = []

    def open_db():
        try:
            Database(url).dispose()
        except Exception as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=open_db) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    db = Database(url)
    assert set(inspect(db.engine).get_table_names()) >= {"files", "jobs", "events", "checkpoints", "models",
                                                         "alembic_version"}
    with db.engine.connect() as connection:
        assert connection.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"


def test_settings_parse_keys_and_models():
    settings = Settings(api_keys="k1:org-a, k2:org-b", base_models="tiny=/models/tiny,hub=org/name")
    assert settings.organisations() == {"k1": "org-a", "k2": "org-b"}
    assert settings.extra_base_models() == {"tiny": "/models/tiny", "hub": "org/name"}
    assert Settings(api_keys="").organisations() is None
    with pytest.raises(ValueError, match="not 'key:organisation'"):
        Settings(api_keys="just-a-key").organisations()
    with pytest.raises(ValueError, match="contains ':'"):
        Settings(api_keys="k1:org:x").organisations()
    with pytest.raises(ValueError, match="no ':' in name"):
        Settings(base_models="a:b=/x").extra_base_models()


def test_migrations_build_exactly_the_declared_tables(tmp_path):
    """Alembic's autogenerate finds nothing to change after every revision ran: the revisions and
    store/tables.py agree (a new column or table without its revision fails here)."""
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    from selftune.store.tables import Base

    db = Database(f"sqlite:///{tmp_path / 'selftune.db'}")
    try:
        with db.engine.connect() as connection:
            diff = compare_metadata(MigrationContext.configure(connection), Base.metadata)
        assert diff == []
        assert {"files", "jobs", "events", "checkpoints", "models", "completions"} <= set(
            inspect(db.engine).get_table_names())
    finally:
        db.dispose()

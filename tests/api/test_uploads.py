"""``/v1/uploads`` through the openai SDK: parts in any order, completed in the order named, md5 checked,
the File validated like any fine-tune upload, and another organisation's upload 404."""

from __future__ import annotations

import hashlib
import io
import json

import openai
import pytest

from tests.helpers import FILLER, GOOD


def _jsonl(rows) -> bytes:
    return "".join(json.dumps(row) + "\n" for row in rows).encode()


def _start(client, data: bytes, purpose: str = "fine-tune", filename: str = "train.jsonl"):
    return client.uploads.create(bytes=len(data), filename=filename, mime_type="text/jsonl", purpose=purpose)


def _part(client, upload_id: str, data: bytes):
    return client.uploads.parts.create(upload_id, data=data)


def test_parts_added_out_of_order_complete_in_the_order_named_into_a_validated_file(client):
    data = _jsonl(FILLER)
    pieces = [data[:100], data[100:350], data[350:]]  # cut mid-line: only the order makes the file
    upload = _start(client, data)
    assert (upload.object, upload.status, upload.bytes, upload.file) == ("upload", "pending", len(data), None)
    assert upload.expires_at == upload.created_at + 3600
    third, first, second = (_part(client, upload.id, p) for p in (pieces[2], pieces[0], pieces[1]))
    assert (first.object, first.upload_id) == ("upload.part", upload.id)

    done = client.uploads.complete(upload.id, part_ids=[first.id, second.id, third.id],
                                   md5=hashlib.md5(data).hexdigest())
    assert done.status == "completed" and done.file is not None
    assert (done.file.filename, done.file.purpose, done.file.bytes) == ("train.jsonl", "fine-tune", len(data))
    assert client.files.content(done.file.id).read() == data
    checked = client.files.wait_for_processing(done.file.id, poll_interval=0.1, max_wait_seconds=60)
    assert checked.status == "processed"
    with pytest.raises(openai.BadRequestError, match="completed") as refused:  # an upload completes once
        _part(client, upload.id, b"more")
    assert refused.value.code == "upload_not_pending"


def test_an_md5_that_differs_creates_no_file_and_leaves_the_upload_pending(client):
    data = _jsonl(FILLER)
    upload = _start(client, data)
    first, second = _part(client, upload.id, data[:200]), _part(client, upload.id, data[200:])
    with pytest.raises(openai.BadRequestError, match="md5") as refused:
        client.uploads.complete(upload.id, part_ids=[second.id, first.id], md5=hashlib.md5(data).hexdigest())
    assert (refused.value.code, refused.value.param) == ("md5_mismatch", "md5")
    assert list(client.files.list()) == []
    done = client.uploads.complete(upload.id, part_ids=[first.id, second.id], md5=hashlib.md5(data).hexdigest())
    assert client.files.content(done.file.id).read() == data


def test_a_completed_file_with_a_bad_line_gets_the_usual_file_error(client):
    data = _jsonl([*FILLER[:3]]) + b"{not json\n" + _jsonl([GOOD])
    upload = _start(client, data)
    done = client.uploads.complete(upload.id, part_ids=[_part(client, upload.id, data).id])
    checked = client.files.wait_for_processing(done.file.id, poll_interval=0.1, max_wait_seconds=60)
    assert checked.status == "error"
    assert "Line 4" in checked.status_details


def test_the_parts_must_add_up_to_the_declared_bytes(client):
    upload = _start(client, b"x" * 10, purpose="user_data")
    part = _part(client, upload.id, b"x" * 6)
    with pytest.raises(openai.BadRequestError) as too_many:
        _part(client, upload.id, b"x" * 5)
    assert too_many.value.code == "upload_too_large"
    with pytest.raises(openai.BadRequestError) as short:
        client.uploads.complete(upload.id, part_ids=[part.id])
    assert (short.value.code, short.value.param) == ("upload_size_mismatch", "part_ids")
    with pytest.raises(openai.BadRequestError) as twice:
        client.uploads.complete(upload.id, part_ids=[part.id, part.id])
    assert twice.value.param == "part_ids"
    with pytest.raises(openai.BadRequestError) as unknown:
        client.uploads.complete(upload.id, part_ids=["part_nope"])
    assert unknown.value.code == "part_not_found"


def test_requests_the_hosted_api_refuses_are_400_naming_the_field(client):
    for params, field in ((dict(bytes=0), "bytes"), (dict(bytes=8 * 1024**3 + 1), "bytes"),
                          (dict(purpose="nonsense"), "purpose"), (dict(mime_type=" "), "mime_type"),
                          (dict(expires_after={"anchor": "created_at", "seconds": 60}), "expires_after.seconds")):
        request = dict(bytes=10, filename="a.jsonl", mime_type="text/jsonl", purpose="fine-tune") | params
        with pytest.raises(openai.BadRequestError) as refused:
            client.uploads.create(**request)
        assert refused.value.param == field


def test_a_cancelled_upload_takes_no_more_parts_and_cannot_complete(client):
    upload = _start(client, b"abc", purpose="user_data")
    part = _part(client, upload.id, b"abc")
    cancelled = client.uploads.cancel(upload.id)
    assert cancelled.status == "cancelled"
    for attempt in (lambda: _part(client, upload.id, b"abc"),
                    lambda: client.uploads.complete(upload.id, part_ids=[part.id]),
                    lambda: client.uploads.cancel(upload.id)):
        with pytest.raises(openai.BadRequestError, match="cancelled"):
            attempt()


def test_another_organisations_upload_is_not_found(org_client):
    a, b = org_client("key-a"), org_client("key-b")
    upload = _start(a, b"abc", purpose="user_data")
    part = _part(a, upload.id, b"abc")
    for attempt in (lambda: _part(b, upload.id, b"abc"),
                    lambda: b.uploads.complete(upload.id, part_ids=[part.id]),
                    lambda: b.uploads.cancel(upload.id)):
        with pytest.raises(openai.NotFoundError) as missing:
            attempt()
        assert missing.value.code == "upload_not_found"
    done = a.uploads.complete(upload.id, part_ids=[part.id])
    with pytest.raises(openai.NotFoundError):
        b.files.retrieve(done.file.id)


def test_the_sdks_chunked_helper_uploads_a_file(client, tmp_path):
    data = _jsonl(FILLER * 3)
    path = tmp_path / "train.jsonl"
    path.write_bytes(data)
    done = client.uploads.upload_file_chunked(file=path, mime_type="text/jsonl", purpose="fine-tune", part_size=256,
                                              md5=hashlib.md5(data).hexdigest())
    assert done.status == "completed"
    assert client.files.content(done.file.id).read() == data


def test_an_upload_not_completed_within_its_hour_expires_and_its_parts_go(tmp_path):
    """The service on a real database and blob store; the upload's hour is made to have passed."""
    from sqlalchemy import update

    from selftune.api.errors import APIError
    from selftune.api.files.service import FileService
    from selftune.api.uploads.protocol import UploadCompleteRequest, UploadCreateRequest
    from selftune.api.uploads.service import UploadService
    from selftune.store.blobs import BlobStore
    from selftune.store.db import Database
    from selftune.store.tables import UploadRow

    db = Database(f"sqlite:///{tmp_path / 'selftune.db'}")
    files = FileService(db=db, blobs=BlobStore(tmp_path / "files"), max_upload_bytes=1000)
    try:
        service = UploadService(files=files)
        upload = service.create("org", UploadCreateRequest(bytes=3, filename="a.txt", mime_type="text/plain",
                                                           purpose="user_data"))
        part = service.add_part("org", upload.id, io.BytesIO(b"abc"))
        assert files.blobs.path(part.id).is_file()
        with db.transaction() as session:
            session.execute(update(UploadRow).where(UploadRow.id == upload.id).values(expires_at=upload.created_at))
        with pytest.raises(APIError, match="expired") as refused:
            service.complete("org", upload.id, UploadCompleteRequest(part_ids=[part.id]))
        assert refused.value.code == "upload_not_pending"
        service.expire_stale()
        assert not files.blobs.path(part.id).exists()
        with db.transaction() as session:
            assert session.get(UploadRow, 1).status == "expired"
    finally:
        files.shutdown()
        db.dispose()

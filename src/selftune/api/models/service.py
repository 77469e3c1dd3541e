"""Models: the base models on offer, the caller's fine-tuned models and their checkpoints.

Checkpoints are addressable as models (``ft:...:ckpt-step-N``), like the hosted service, but are
not listed (the hosted list does not show them either). Only fine-tuned models can be deleted; that
removes the model, its checkpoints and their weights on disk (the job and its results file remain).
"""

from __future__ import annotations

import shutil

from sqlalchemy import delete, select

from selftune.api.errors import APIError, not_found
from selftune.api.models.protocol import Model, ModelDeleted
from selftune.models.catalog import base_models
from selftune.models.ids import parse_fine_tuned_id
from selftune.store.db import Database
from selftune.store.tables import CheckpointRow, ModelRow

BASE_CREATED = 1_730_000_000  # base models have no creation time here; a fixed one keeps lists stable


class ModelService:
    def __init__(self, *, db: Database):
        self.db = db

    def list(self, org: str) -> list[Model]:
        models = [Model(id=m.id, created=BASE_CREATED, owned_by=m.owned_by) for m in base_models().values()]
        with self.db.transaction() as session:
            rows = session.scalars(select(ModelRow).where(ModelRow.org == org).order_by(ModelRow.pk))
            models += [Model(id=r.id, created=r.created_at, owned_by=r.org) for r in rows]
        return models

    def retrieve(self, org: str, model_id: str) -> Model:
        base = base_models().get(model_id)
        if base is not None:
            return Model(id=base.id, created=BASE_CREATED, owned_by=base.owned_by)
        with self.db.transaction() as session:
            row = find_fine_tuned(session, org, model_id)
            return Model(id=model_id, created=row.created_at, owned_by=row.org)

    def delete(self, org: str, model_id: str) -> ModelDeleted:
        if model_id in base_models():
            raise APIError(403, f"Base model {model_id!r} can't be deleted; only fine-tuned models can.",
                           param="model", code="model_not_deletable", type="invalid_request_error")
        parsed = parse_fine_tuned_id(model_id)
        if parsed is not None and parsed.step is not None:
            raise APIError(400, "A checkpoint is deleted with its job's model, not on its own.", param="model")
        with self.db.transaction() as session:
            row = session.scalar(select(ModelRow).where(ModelRow.id == model_id, ModelRow.org == org))
            if row is None:
                raise not_found("model", model_id, param="model")
            session.delete(row)
            session.execute(delete(CheckpointRow).where(CheckpointRow.job_id == row.job_id))
        # after the commit: a crash in between leaves files behind, never a model whose weights are gone
        shutil.rmtree(row.path, ignore_errors=True)
        return ModelDeleted(id=model_id, deleted=True)



def find_fine_tuned(session, org: str, model_id: str) -> ModelRow | CheckpointRow:
    """The caller's fine-tuned model or checkpoint named ``model_id``; 404 when there is none (another
    organisation's is as absent as one never made). Listing, retrieving and serving all look up here."""
    parsed = parse_fine_tuned_id(model_id)
    if parsed is None:
        raise not_found("model", model_id, param="model")
    table = ModelRow if parsed.step is None else CheckpointRow
    column = ModelRow.id if parsed.step is None else CheckpointRow.model
    row = session.scalar(select(table).where(column == model_id, table.org == org))
    if row is None:
        raise not_found("model", model_id, param="model")
    return row

"""``metadata``: up to 16 string pairs on jobs and stored completions, as the hosted API allows, and
the ``metadata[key]=value`` query filter of their list endpoints."""

from __future__ import annotations

import re

from fastapi import Request

from selftune.api.errors import bad_request

MAX_KEYS, MAX_KEY, MAX_VALUE = 16, 64, 512
# what check_metadata accepts, for the OpenAPI document: Field(json_schema_extra=METADATA_SCHEMA)
METADATA_SCHEMA = {"maxProperties": MAX_KEYS, "propertyNames": {"maxLength": MAX_KEY},
                   "additionalProperties": {"type": "string", "maxLength": MAX_VALUE}}
_QUERY_KEY = re.compile(r"^metadata\[(.+)\]$")


def check_metadata(metadata: dict | None) -> dict | None:
    if not metadata:
        return None
    if len(metadata) > MAX_KEYS:
        raise bad_request(f"metadata may have at most {MAX_KEYS} keys.", param="metadata")
    for key, value in metadata.items():
        if len(key) > MAX_KEY or not isinstance(value, str) or len(value) > MAX_VALUE:
            raise bad_request(f"metadata keys are strings of at most {MAX_KEY} characters and values "
                              f"strings of at most {MAX_VALUE}.", param=f"metadata.{key}")
    return metadata


# metadata_filter reads the query by hand (any key): this declares it, for clients and the contract fuzzer
METADATA_QUERY = {"parameters": [{
    "name": "metadata", "in": "query", "required": False, "style": "deepObject", "explode": True,
    "description": "Only objects with these metadata pairs: metadata[key]=value.",
    "schema": {"type": "object", "additionalProperties": {"type": "string"}}}]}


def metadata_filter(request: Request) -> dict[str, str]:
    """``?metadata[task]=cards&metadata[run]=2`` -> ``{"task": "cards", "run": "2"}``."""
    return {m.group(1): value for key, value in request.query_params.items() if (m := _QUERY_KEY.match(key))}

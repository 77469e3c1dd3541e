"""Bearer API keys, each bound to one organisation; the organisation scopes every query.

Without SELFTUNE_API_KEYS the server is in local mode: any key (the SDK insists on one) maps to the
single organisation ``local``, and ``selftune serve`` refuses non-loopback addresses.
"""

from __future__ import annotations

import hmac
from typing import Annotated

from fastapi import Depends, Request

from selftune.api.errors import APIError

LOCAL_ORG = "local"


def organisation(request: Request) -> str:
    """FastAPI dependency: the caller's organisation, or 401."""
    keys: dict[str, str] | None = request.app.state.api_keys
    if keys is None:
        return LOCAL_ORG
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token:
        raise APIError(401, "You didn't provide an API key: send 'Authorization: Bearer <key>'.",
                       code="missing_api_key")
    org = org_for_key(keys, token)
    if org is None:
        raise APIError(401, "Incorrect API key provided.", code="invalid_api_key")
    return org


def org_for_key(keys: dict[str, str], key: str) -> str | None:
    """The organisation ``key`` belongs to, or None (also used by the dashboard's login)."""
    for known, org in keys.items():
        if hmac.compare_digest(known.encode(), key.strip().encode()):  # constant time: no key leaks by timing
            return org
    return None


Org = Annotated[str, Depends(organisation)]  # a route parameter typed Org is the caller's organisation

"""Bearer API keys, each bound to one organisation; the organisation scopes every query.

Without SELFTUNE_API_KEYS the server is in local mode: any key (the SDK insists on one) maps to the
single organisation ``local``, and ``selftune serve`` refuses non-loopback addresses.

An evaluation started from the dashboard calls this very server; in keyed mode it gets a run key
(:class:`RunKeys`): random, held only in this process's memory, bound to the organisation that started
the run, and revoked when the run ends. The organisation's real keys are never stored or shown.
"""

from __future__ import annotations

import hmac
import secrets
import threading
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
    run_keys: RunKeys | None = getattr(request.app.state, "run_keys", None)
    if org is None and run_keys is not None:
        org = run_keys.org_for(token)
    if org is None:
        raise APIError(401, "Incorrect API key provided.", code="invalid_api_key")
    return org


def org_for_key(keys: dict[str, str], key: str) -> str | None:
    """The organisation ``key`` belongs to, or None (also used by the dashboard's login)."""
    for known, org in keys.items():
        if hmac.compare_digest(known.encode(), key.strip().encode()):  # constant time: no key leaks by timing
            return org
    return None


class RunKeys:
    """Ephemeral API keys for the server's own background runs: issued per run, in memory only, valid
    until revoked (the run's end) or until the process exits. The API accepts them; the dashboard's
    sign-in does not (it asks :func:`org_for_key` with the configured keys only)."""

    PREFIX = "st-run-"

    def __init__(self) -> None:
        self._keys: dict[str, str] = {}
        self._lock = threading.Lock()

    def issue(self, org: str) -> str:
        key = self.PREFIX + secrets.token_urlsafe(32)
        with self._lock:
            self._keys[key] = org
        return key

    def revoke(self, key: str) -> None:
        with self._lock:
            self._keys.pop(key, None)

    def org_for(self, key: str) -> str | None:
        with self._lock:
            known = dict(self._keys)
        return org_for_key(known, key) if known else None


Org = Annotated[str, Depends(organisation)]  # a route parameter typed Org is the caller's organisation

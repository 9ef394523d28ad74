"""Optional bearer API keys. Off when no key is configured; then every caller is the public owner."""

from __future__ import annotations

import hashlib
import hmac
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from service.config import Settings
from service.errors import Unauthorized
from service.styles import PUBLIC_OWNER

bearer = HTTPBearer(auto_error=False, description="an API key from ATELIER_API_KEYS, when keys are configured")


def owner_of(key: str) -> str:
    """The style-store owner for a key: a hash, so keys never reach the disk."""
    return "key-" + hashlib.sha256(key.encode()).hexdigest()[:24]


def authenticate(settings: Settings, credentials: HTTPAuthorizationCredentials | None) -> str:
    if not settings.auth_enabled:
        return PUBLIC_OWNER
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise Unauthorized("this server requires `Authorization: Bearer <key>`")
    offered = credentials.credentials.encode()
    if not any(hmac.compare_digest(offered, key.encode()) for key in settings.api_keys):
        raise Unauthorized("the API key is not valid")
    return owner_of(credentials.credentials)


def require_owner(
    request: Request, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]
) -> str:
    return authenticate(request.app.state.settings, credentials)


Owner = Annotated[str, Depends(require_owner)]

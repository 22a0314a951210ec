"""The control plane's bearer token: read from the environment, checked in constant time."""

from __future__ import annotations

import hmac
import os

from aiohttp import web

from twinstar.config import ConfigError, ControlConfig
from twinstar.redact import register_secrets


def control_token(settings: ControlConfig) -> str:
    """The token requests must carry ("" without `token_env`: loopback only, `Config.validate` sees to it)."""
    if not settings.token_env:
        return ""
    token = os.environ.get(settings.token_env, "")
    if len(token) < 16:
        raise ConfigError(f"environment variable {settings.token_env} (control.token_env) must hold 16+ characters")
    register_secrets([token])  # never in a log line, even in a logged URL
    return token


def authorized(request: web.Request, token: str) -> bool:
    """Whether `request` carries `token`: `Authorization: Bearer`, or `?token=` (a page opened on a phone)."""
    if not token:
        return True
    header = request.headers.get("Authorization", "")
    offered = header[7:] if header.startswith("Bearer ") else request.query.get("token", "")
    return hmac.compare_digest(offered.encode(), token.encode())

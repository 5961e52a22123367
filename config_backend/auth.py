"""API-key authentication (`Authorization: Bearer <key>`) and the scope permission.

Scopes (SPEC): `read` = every GET; `runtime` = read + thread writes; `write` = read + config
writes. Staff users logged into the admin may use the API too, within their model permissions.
"""

import logging
import time

from django.contrib.auth.models import AnonymousUser
from django.core.cache import cache
from django.utils import timezone
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import exceptions, permissions
from rest_framework.authentication import BaseAuthentication

from config_backend.models import APIKey

logger = logging.getLogger(__name__)

# last_used_at is "accurate to the hour": written at most once an hour per key.
LAST_USED_RESOLUTION_SECONDS = 3600
# Per process: when each key's last_used_at may next be written (skips the cache round trip).
_next_last_used_write: dict[str, float] = {}


def api_key_from_key(key: str) -> APIKey | None:
    """The usable key matching `key` (not revoked, not expired), or None."""
    prefix, dot, _ = key.partition(".")
    if not dot or not prefix.isascii() or not prefix.isalnum() or len(prefix) > 8:
        return None
    api_key = APIKey.objects.filter(prefix=prefix, revoked=False).first()
    if api_key is None or api_key.has_expired:
        return None
    if not APIKey.objects.key_generator.verify(key, api_key.hashed_key):
        return None
    return api_key


def api_key_last_used_cache_key(api_key: APIKey) -> str:
    return f"api-key-last-used:{api_key.prefix}"


def api_key_mark_used(api_key: APIKey) -> None:
    """Record the key's use, writing to the database at most once an hour per key.

    One gate per process (no cache round trip on most requests), then one shared gate in the
    cache so that all processes together write once. If the cache is down, each process
    writes at most once an hour.
    """
    now = time.monotonic()
    if _next_last_used_write.get(api_key.prefix, 0.0) > now:
        return
    _next_last_used_write[api_key.prefix] = now + LAST_USED_RESOLUTION_SECONDS
    try:
        first = cache.add(api_key_last_used_cache_key(api_key), 1, LAST_USED_RESOLUTION_SECONDS)
    except Exception:  # the cache is optional here; the per-process gate still holds
        logger.warning("cache unavailable for the API key last-used gate", exc_info=True)
        first = True
    if first:
        APIKey.objects.filter(pk=api_key.pk).update(last_used_at=timezone.now())


class BearerKeyAuthentication(BaseAuthentication):
    """`Authorization: Bearer <key>`. Other schemes are left to the next authenticator."""

    keyword = "Bearer"

    def authenticate(self, request):
        scheme, _, key = request.META.get("HTTP_AUTHORIZATION", "").partition(" ")
        if scheme.lower() != self.keyword.lower():
            return None
        key = key.strip()
        if not key or " " in key:
            raise exceptions.AuthenticationFailed(
                "Malformed Authorization header; expected `Bearer <key>`."
            )
        api_key = api_key_from_key(key)
        if api_key is None:
            raise exceptions.AuthenticationFailed("Invalid, expired or revoked API key.")
        api_key_mark_used(api_key)
        return AnonymousUser(), api_key

    def authenticate_header(self, request):
        # Present, so that DRF answers a request without credentials with 401, not 403.
        return f'{self.keyword} realm="api"'


# The model permission a staff user needs for each method.
_PERMISSION_ACTIONS = {
    "GET": "view",
    "HEAD": "view",
    "OPTIONS": "view",
    "POST": "add",
    "PUT": "change",
    "PATCH": "change",
    "DELETE": "delete",
}


class ScopeOrModelPermission(permissions.BasePermission):
    """API key: its scope covers the request. Staff session: the user's model permissions.

    Views declare `permission_model` (whose Django permissions apply to staff) and
    `write_scope` (the key scope that may write here: `write` for config, `runtime` for threads).
    """

    def has_permission(self, request, view):
        if isinstance(request.auth, APIKey):
            return scope_allows(
                scope=request.auth.scope,
                method=request.method,
                write_scope=getattr(view, "write_scope", APIKey.Scope.WRITE),
            )
        user = request.user
        if not (user and user.is_authenticated and user.is_active and user.is_staff):
            return False
        model = view.permission_model
        action = _PERMISSION_ACTIONS.get(request.method)
        if action is None:
            return False
        return user.has_perm(f"{model._meta.app_label}.{action}_{model._meta.model_name}")


def scope_allows(*, scope: str, method: str, write_scope: str) -> bool:
    if method in permissions.SAFE_METHODS:
        return True
    return scope == write_scope


class BearerKeyScheme(OpenApiAuthenticationExtension):
    target_class = "config_backend.auth.BearerKeyAuthentication"
    name = "bearerAuth"

    def get_security_definition(self, auto_schema):
        return {
            "type": "http",
            "scheme": "bearer",
            "description": (
                "An API key (`manage.py create_api_key NAME --scope read|runtime|write`). "
                "Scopes: `read` = every GET; `runtime` = read + thread writes; "
                "`write` = read + config writes."
            ),
        }

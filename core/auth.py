"""API-key authentication (`Authorization: Bearer <key>`) and the scope permission.

Scopes (SPEC): `read` = every GET; `runtime` = read + thread writes; `write` = read + config
writes. Staff users logged into the admin may use the API too, within their model permissions.
"""

import json
import time

from django.conf import settings
from django.contrib.auth.models import AnonymousUser
from django.utils import timezone
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import exceptions, permissions
from rest_framework.authentication import BaseAuthentication

from core import cache
from core.config_reads import key_record, record_allows, used_hour
from core.models import APIKey, ConfigRevision


def api_key_from_database(key: str) -> APIKey | None:
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


def api_key_for(key: str) -> APIKey | None:
    """The key's holder, from its cached record (no SQL) or else from the database.

    `last_used_at` is accurate to the hour: it is written when the key is first used in an
    hour, then the cached record says "used this hour" and later requests write nothing.
    """
    prefix = key.partition(".")[0]
    record_keys = [cache.revision_key(ConfigRevision.API_KEYS), cache.api_key_record_key(prefix)]
    mirror, record = cache.try_cache(
        "reading an API key", lambda s: s.get_many(record_keys), [None, None]
    )
    if record_allows(record, key, mirror):
        fields = json.loads(record)
        # An unsaved stand-in: all that authorization needs, without a query.
        return APIKey(prefix=prefix, scope=fields["scope"], hashed_key=fields["hash"])

    # Read before the key row, so a record can only be tagged older than what it says.
    keys_revision = cache.current_revision(ConfigRevision.API_KEYS)
    api_key = api_key_from_database(key)
    if api_key is None:
        return None
    now = time.time()
    hour = used_hour(now)
    if api_key.last_used_at is None or used_hour(api_key.last_used_at.timestamp()) != hour:
        # update(), not save(): recording a use is not a key change (no revision bump).
        APIKey.objects.filter(pk=api_key.pk).update(last_used_at=timezone.now())

    record = key_record(api_key=api_key, keys_revision=keys_revision, hour=hour)
    # Bounded, so a revocation that moves no revision (a bare UPDATE) still takes effect.
    cache.try_cache(
        "storing an API key record",
        lambda s: s.set(cache.api_key_record_key(prefix), record, settings.API_KEY_RECORD_SECONDS),
    )
    # Missing (Redis restarted empty, or evicted it), or behind the database (a key change
    # committed while Redis was unreachable): raised, so older records stop counting and this
    # one, tagged with the database's revision, starts to.
    if mirror is None or int(mirror) < keys_revision:
        cache.seed_mirror(ConfigRevision.API_KEYS)
    return api_key


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
        api_key = api_key_for(key)
        if api_key is None:
            raise exceptions.AuthenticationFailed("Invalid, expired or revoked API key.")
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
    target_class = "core.auth.BearerKeyAuthentication"
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

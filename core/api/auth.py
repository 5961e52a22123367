"""API-key authentication (`Authorization: Bearer <key>`) and the scope permission.

Scopes (docs/contract.md): `read` = every GET; `runtime` = read + thread writes; `write` =
read + config writes. Staff users logged into the admin may use the API too, within their model
permissions.
"""

from django.contrib.auth.models import AnonymousUser
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import exceptions, permissions
from rest_framework.authentication import BaseAuthentication

from core.api.keys import MalformedAuthorization, api_key_for, bearer_key, scope_allows
from core.models import APIKey
from core.reads.fetch import request_read


class BearerKeyAuthentication(BaseAuthentication):
    """`Authorization: Bearer <key>`. Other schemes are left to the next authenticator."""

    keyword = "Bearer"

    def authenticate(self, request):
        try:
            key = bearer_key(request.META.get("HTTP_AUTHORIZATION"))
        except MalformedAuthorization as exc:
            raise exceptions.AuthenticationFailed(str(exc)) from None
        if key is None:
            return None
        read = request_read(request.META)  # what a config GET already fetched, if it did
        cached = (read.keys_mirror, read.key_record) if read and read.key == key else None
        api_key = api_key_for(key, cached=cached)
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
    `write_scope` (the key scope that may write here: `write` for config, `runtime` for threads);
    `post_reads_only` when their POST only reads (it then needs what a GET needs).
    """

    # What a refusal says (DRF answers 403 with it): which scope or permission was missing. DRF
    # makes a permission instance per request, so setting it in has_permission is safe.
    message = "You do not have permission to perform this action."

    def has_permission(self, request, view):
        method = request.method
        if method == "POST" and getattr(view, "post_reads_only", False):
            method = "GET"  # a POST that changes nothing (rendering): a read's scope and right
        if isinstance(request.auth, APIKey):
            scope = request.auth.scope
            write_scope = getattr(view, "write_scope", APIKey.Scope.WRITE)
            if scope_allows(scope=scope, method=method, write_scope=write_scope):
                return True
            needed = APIKey.Scope.READ if method in permissions.SAFE_METHODS else write_scope
            self.message = (
                f"This API key's scope `{scope}` does not allow {request.method} here; "
                f"`{needed}` scope needed."
            )
            return False
        user = request.user
        if not (user and user.is_authenticated and user.is_active and user.is_staff):
            self.message = "Only staff users may use the API with a session; send an API key."
            return False
        model = view.permission_model
        action = _PERMISSION_ACTIONS.get(method)
        if action is None:
            self.message = f"{request.method} is not allowed here."
            return False
        permission = f"{model._meta.app_label}.{action}_{model._meta.model_name}"
        if user.has_perm(permission):
            return True
        self.message = f"You need the `{permission}` permission to {request.method} here."
        return False


class BearerKeyScheme(OpenApiAuthenticationExtension):
    target_class = "core.api.auth.BearerKeyAuthentication"
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

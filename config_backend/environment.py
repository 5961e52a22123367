"""The typed readers of environment variables the settings use (config_backend.settings): a
bad value raises ImproperlyConfigured naming the variable, its value quoted with any password
hidden (`shown`)."""

import os
import re
import urllib.parse

from django.core.exceptions import ImproperlyConfigured

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


def shown(raw: str) -> str:
    """A variable's value as a settings error quotes it: a password in it (`user:password@`,
    with or without a scheme) written as `***`, for start-up errors end up in logs. Everything
    before the last `@` counts as user and password, so a password holding `@` or `/` is
    hidden whole."""
    scheme, separator, rest = raw.partition("://")
    if not separator:
        scheme, rest = "", raw
    userinfo, at, location = rest.rpartition("@")
    if at and ":" in userinfo:
        user = userinfo.partition(":")[0]
        raw = f"{scheme}{separator}{user}:***@{location}"
    return repr(raw)


def env_bool(name: str, default: bool) -> bool:
    raw = os.environ.get(name)
    if raw is None:
        return default
    value = raw.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ImproperlyConfigured(f"{name} must be 1 or 0 (got {shown(raw)}).")


def env_list(name: str, default: str) -> list[str]:
    return [item.strip() for item in os.environ.get(name, default).split(",") if item.strip()]


def env_int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be a whole number (got {shown(raw)}).") from None


def env_url(name: str, schemes: tuple[str, ...]) -> str | None:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return None
    scheme = raw.split("://", 1)[0]
    if scheme not in schemes or "://" not in raw:
        raise ImproperlyConfigured(
            f"{name} must be a URL starting with {' or '.join(s + '://' for s in schemes)} "
            f"(got {shown(raw)})."
        )
    try:
        if scheme not in ("sqlite", "unix"):  # these name a file, not host:port
            urllib.parse.urlsplit(raw).port  # noqa: B018 (parsing it is the check)
    except ValueError as exc:  # a port that is no number, or out of range; a bad IPv6 host
        raise ImproperlyConfigured(
            f"{name} is not a valid URL: {exc} (got {shown(raw)})."
        ) from None
    return raw


def env_sentinels(name: str) -> list[tuple[str, int]]:
    """`host:port,host:port,…` (an IPv6 host in brackets) as [(host, port), …]; unset = []."""
    sentinels = []
    for item in env_list(name, ""):
        host, _, port = item.rpartition(":")
        host = host.removeprefix("[").removesuffix("]")
        if not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ImproperlyConfigured(
                f"{name} must be host:port pairs separated by commas, e.g. "
                f"sentinel-1:26379,sentinel-2:26379 (got {shown(item)} in "
                f"{', '.join(shown(each) for each in os.environ[name].split(','))})."
            )
        sentinels.append((host, int(port)))
    return sentinels


def env_sentinel_service(name: str, default: str) -> str:
    """A Sentinel master name. It is the host part of django-redis's URL, which lower-cases
    it, so only lower-case letters, digits, `.`, `_` and `-` are accepted."""
    value = os.environ.get(name, "").strip() or default
    if not re.fullmatch(r"[a-z0-9][a-z0-9._-]*", value):
        raise ImproperlyConfigured(
            f"{name} must be a Sentinel master name of lower-case letters, digits, '.', '_' "
            f"and '-' (got {shown(value)})."
        )
    return value

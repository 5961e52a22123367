"""Where a webhook may send (docs/contract.md "Webhooks"): no SSRF.

A destination is an http(s) URL whose host resolves only to public addresses: loopback,
private, link-local, multicast, reserved and unspecified ones are refused, unless the host is
listed in settings.WEBHOOK_ALLOWED_HOSTS (a receiver on the same machine or network, on
purpose). The check runs when a webhook is saved, and again before every send, because DNS can
change in between: the sender then connects to the very address it checked (resolve, check,
connect to that IP with the URL's host in the Host header and in TLS), so a name that resolves
differently a moment later (DNS rebinding) cannot slip through.
"""

import ipaddress
import socket
import urllib.parse
from dataclasses import dataclass

from django.conf import settings
from django.core.exceptions import ValidationError
from django.utils.translation import gettext

SCHEMES = ("http", "https")
URL_MAX_LENGTH = 2000


class RefusedDestination(ValueError):
    """A URL the sender must not call; the message says why."""


@dataclass(frozen=True)
class Destination:
    """A checked URL: what to connect to (address, port), and what to ask for."""

    scheme: str
    host: str
    port: int
    target: str  # path and query
    address: str  # the checked IP the connection goes to


def is_public(address: str) -> bool:
    ip = ipaddress.ip_address(address.split("%", 1)[0])  # an IPv6 zone is not part of it
    if ip.version == 6 and ip.ipv4_mapped is not None:  # ::ffff:127.0.0.1 is 127.0.0.1
        ip = ip.ipv4_mapped
    return ip.is_global and not ip.is_multicast


def split_url(url: str) -> urllib.parse.SplitResult:
    """The parts of an http(s) URL with a host; RefusedDestination otherwise."""
    if not isinstance(url, str) or not url.strip():
        raise RefusedDestination(gettext("Enter an http:// or https:// URL."))
    if len(url) > URL_MAX_LENGTH:
        raise RefusedDestination(
            gettext("At most %(limit)s characters.") % {"limit": URL_MAX_LENGTH}
        )
    if any(ord(char) < 33 or ord(char) == 127 for char in url):
        raise RefusedDestination("A URL holds no spaces or control characters.")
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in SCHEMES:
        raise RefusedDestination(gettext("Only http:// and https:// URLs are allowed."))
    try:
        parts.port  # noqa: B018 (parsing it is the check)
    except ValueError:
        raise RefusedDestination(gettext("The port is not a number from 1 to 65535.")) from None
    if not parts.hostname:
        raise RefusedDestination("The URL names no host.")
    if parts.username is not None or parts.password is not None:
        raise RefusedDestination(
            gettext("Credentials in the URL are not supported; put a token in it.")
        )
    return parts


def resolve(url: str) -> Destination:
    """The destination `url` names, at one of the addresses its host resolves to now; raises
    RefusedDestination (module docstring)."""
    parts = split_url(url)
    host = parts.hostname
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        found = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError):
        raise RefusedDestination(
            gettext("The host “%(host)s” does not resolve.") % {"host": host}
        ) from None
    addresses = list(dict.fromkeys(info[4][0] for info in found))
    if host.lower() not in settings.WEBHOOK_ALLOWED_HOSTS:
        for address in addresses:
            if not is_public(address):
                raise RefusedDestination(
                    gettext(
                        "“%(host)s” resolves to %(address)s, a loopback, private, link-local or "
                        "multicast address; list the host in WEBHOOK_ALLOWED_HOSTS to allow it."
                    )
                    % {"host": host, "address": address}
                )
    target = parts.path or "/"
    if parts.query:
        target += f"?{parts.query}"
    return Destination(parts.scheme, host, port, target, addresses[0])


def validate_destination(url: str) -> None:
    """The model field's validator: the admin, the API and the services all check this."""
    try:
        resolve(url)
    except RefusedDestination as exc:
        raise ValidationError(str(exc), code="refused_destination") from None

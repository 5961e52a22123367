"""The last-known-good file: what the client serves when it starts while the server is down.

Written after each 200 so a crash at any moment leaves either the previous file or the new one,
never a mix: the bytes go to a temporary file in the same directory, are fsynced, then
os.replace() swaps it in (atomic on POSIX and Windows), and the directory is fsynced so the
rename itself survives a power cut. The API key is never written.

The file wraps the bundle with the ETag it was served with (so the first request after a
restart can be a conditional GET) and the label it was read for (a file written for another
label is not served). A label under a rollout adds its `rollout` and the `candidate` bundle, so
a restart from the file serves each user their variant. A bare bundle, e.g. saved with curl, is
read too.

Integrity: the file carries an HMAC-SHA256 of its label, ETag and bundle keyed by the API key
(`hmac_sha256`), so a 304 can only ever confirm what this client stored: a file whose HMAC does
not match (edited, or written with another key) is not served at all. A file without one (a bare
bundle, or one an older client wrote) is "unverified": it may be served while the server cannot
be reached, but its ETag is never sent, so the first answer from the server is a full 200.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

from config_client._bundle import Bundle, BundleError, check_bundle
from config_client._http import check_label

FORMAT = "assistant-config-client/1"


class UnusableFile(Exception):
    """The file exists but cannot be served; the message says why."""


@dataclass(frozen=True)
class Stored:
    bundle: Bundle
    etag: str | None
    mtime: float  # seconds since the epoch: when the bundle was last confirmed current
    verified: bool  # its HMAC matched: written by this client with this key
    rollout: dict | None = None  # the label's rollout, and the bundle of its candidate
    candidate: Bundle | None = None


def read_file(path: Path, *, label: str | None, api_key: str) -> Stored | None:
    """The bundle saved at `path`, None when there is no file, UnusableFile when it is bad."""
    try:
        raw = path.read_bytes()
        mtime = path.stat().st_mtime
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise UnusableFile(f"cannot read it: {exc}") from None
    try:
        data = json.loads(raw)
    except RecursionError:
        raise UnusableFile("JSON nested too deeply") from None
    except ValueError as exc:
        raise UnusableFile(f"not JSON: {exc}") from None
    verified = False
    if isinstance(data, dict) and data.get("format") == FORMAT:
        if data.get("label") != label:
            raise UnusableFile(f"it holds label {data.get('label')!r}, this client reads {label!r}")
        seal = data.get("hmac_sha256")
        if seal is not None:
            try:
                expected = _seal(data, api_key)
            except (RecursionError, ValueError):
                raise UnusableFile("JSON nested too deeply") from None
            if not (isinstance(seal, str) and hmac.compare_digest(seal, expected)):
                raise UnusableFile(
                    "its integrity check failed: it was changed after this client wrote it, "
                    "or written with another API key"
                )
            verified = True
        etag, rollout, candidate = data.get("etag"), data.get("rollout"), data.get("candidate")
        data = data.get("bundle")
    else:
        etag, rollout, candidate = None, None, None  # a bare bundle
    try:
        bundle = check_bundle(data)
        if rollout is not None:
            rollout = check_label({"rollout": rollout})["rollout"]
            candidate = check_bundle(candidate)
    except BundleError as exc:
        raise UnusableFile(f"not a config bundle: {exc}") from None
    etag = etag if isinstance(etag, str) else None
    return Stored(bundle, etag, mtime, verified, rollout, candidate if rollout else None)


def write_file(
    path: Path,
    bundle: Bundle,
    *,
    etag: str | None,
    label: str | None,
    api_key: str,
    rollout: dict | None = None,
    candidate: Bundle | None = None,
) -> None:
    """Replace the file atomically with this bundle (and the label's rollout and candidate
    bundle, if any) (raises OSError on failure)."""
    data: dict[str, object] = {"format": FORMAT, "label": label, "etag": etag, "bundle": bundle}
    if rollout is not None:
        data.update(rollout=rollout, candidate=candidate)
    data["hmac_sha256"] = _seal(data, api_key)
    payload = json.dumps(data, ensure_ascii=False, separators=(",", ":")).encode()
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor, temporary = tempfile.mkstemp(
        dir=path.parent, prefix=f".{path.name}.", suffix=".tmp"
    )
    try:
        with os.fdopen(descriptor, "wb") as handle:
            handle.write(payload)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise
    _fsync_directory(path.parent)


def _seal(data: dict, api_key: str) -> str:
    """The HMAC of what the file says, over a canonical JSON form (so not over its bytes,
    which a reader cannot reproduce; key order and spacing do not matter, values do)."""
    signed = {name: data.get(name) for name in ("format", "label", "etag", "bundle")}
    # Sealed when present only: a file without a rollout keeps the seal older clients wrote.
    signed.update({name: data[name] for name in ("rollout", "candidate") if name in data})
    canonical = json.dumps(signed, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hmac.new(api_key.encode(), canonical.encode(), hashlib.sha256).hexdigest()


def touch_file(path: Path) -> None:
    """Mark the file as confirmed current (a 304), so a restart from it reports a true age."""
    with contextlib.suppress(OSError):
        os.utime(path)


def _fsync_directory(directory: Path) -> None:
    try:
        descriptor = os.open(directory, os.O_RDONLY)
    except OSError:
        return  # not possible on every platform (Windows); the rename is atomic all the same
    try:
        os.fsync(descriptor)
    except OSError:
        pass
    finally:
        os.close(descriptor)

"""The last-known-good file: what the client serves when it starts while the server is down.

Written after each 200 so a crash at any moment leaves either the previous file or the new one,
never a mix: the bytes go to a temporary file in the same directory, are fsynced, then
os.replace() swaps it in (atomic on POSIX and Windows), and the directory is fsynced so the
rename itself survives a power cut. The API key is never written.

The file wraps the bundle with the ETag it was served with (so the first request after a
restart can be a conditional GET) and the label it was read for (a file written for another
label is not served). A bare bundle, e.g. saved with curl, is read too.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

from config_client._bundle import Bundle, BundleError, check_bundle

FORMAT = "assistant-config-client/1"


class UnusableFile(Exception):
    """The file exists but cannot be served; the message says why."""


@dataclass(frozen=True)
class Stored:
    bundle: Bundle
    etag: str | None
    mtime: float  # seconds since the epoch: when the bundle was last confirmed current


def read_file(path: Path, *, label: str | None) -> Stored | None:
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
    except ValueError as exc:
        raise UnusableFile(f"not JSON: {exc}") from None
    if isinstance(data, dict) and data.get("format") == FORMAT:
        if data.get("label") != label:
            raise UnusableFile(f"it holds label {data.get('label')!r}, this client reads {label!r}")
        etag, data = data.get("etag"), data.get("bundle")
    else:
        etag = None  # a bare bundle
    try:
        bundle = check_bundle(data)
    except BundleError as exc:
        raise UnusableFile(f"not a config bundle: {exc}") from None
    return Stored(bundle, etag if isinstance(etag, str) else None, mtime)


def write_file(path: Path, bundle: Bundle, *, etag: str | None, label: str | None) -> None:
    """Replace the file atomically with this bundle (raises OSError on failure)."""
    data = {"format": FORMAT, "label": label, "etag": etag, "bundle": bundle}
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

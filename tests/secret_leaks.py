"""Pytest plugin: a run fails if any API key created during it appears in any log output.

Loaded with `-p tests.secret_leaks` (pyproject.toml), for every run, whole or partial.

- Keys: every key generated in the test process (the library's KeyGenerator.generate, which
  `create_key`, the factories' key_client, `create_api_key` and the admin's add form all go
  through) is registered with the test that made it: its secret part, and its stored hash.
- Output: every log record of the test process, formatted both ways the app can format it
  (JSON lines and console lines), by a handler on the root logger and on every logger that does
  not propagate; and everything each server started by tests/live.py wrote (its log files).
- At the end, each run of 32 or more letters and digits in that output is looked up among the
  registered secrets and hashes (one pass, however many keys), and any match fails the run,
  naming the test that created the key and where it showed up.

Not covered: keys generated inside a server subprocess (tests create theirs in-process).
"""

import logging
import re
from pathlib import Path

import pytest

from core.ops.log_formats import ConsoleFormatter, RequestIdFilter, json_formatter

_RUN = re.compile(r"[A-Za-z0-9]{32,}")

_current_test = "(outside any test)"
_created: dict[str, tuple[str, str]] = {}  # secret or hash -> (what it is, creating test)
_lengths: set[int] = set()
_output: list[tuple[str, str]] = []  # (test, text)
_server_logs_seen: dict[Path, str] = {}  # server log file -> the test that started it
_leaks: list[str] = []


class _RecordingHandler(logging.Handler):
    """Keeps every record as the app's two formats would write it."""

    def __init__(self):
        super().__init__(level=logging.NOTSET)
        self.addFilter(RequestIdFilter())
        self.formats = (json_formatter(), ConsoleFormatter())

    def emit(self, record):
        try:
            text = "\n".join(formatter.format(record) for formatter in self.formats)
        except Exception:
            text = f"{record.msg!r} {record.args!r} {record.__dict__!r}"
        _output.append((_current_test, text))


_handler = _RecordingHandler()


def _attach_handler() -> None:
    """On the root logger and every logger that stops propagation; again after any test that
    reconfigured logging (dictConfig replaces the root's handlers)."""
    loggers = [logging.getLogger()]
    loggers += [
        logger
        for logger in logging.Logger.manager.loggerDict.values()
        if isinstance(logger, logging.Logger) and not logger.propagate
    ]
    for logger in loggers:
        if _handler not in logger.handlers:
            logger.addHandler(_handler)
    # Records below a logger's level are never made, so never written either: nothing to see.


def _register_key_generation() -> None:
    from rest_framework_api_key.crypto import KeyGenerator

    original = KeyGenerator.generate

    def generate(self):
        key, prefix, hashed_key = original(self)
        secret = key.partition(".")[2]
        hash_hex = hashed_key.rpartition("$")[2]
        for value, what in ((secret, "key"), (hash_hex, "key hash")):
            _created[value] = (what, _current_test)
            _lengths.add(len(value))
        return key, prefix, hashed_key

    KeyGenerator.generate = generate


def _server_logs_dir() -> Path | None:
    import os

    root = os.environ.get("TEST_SERVICES_DIR")
    return Path(root) / "server-logs" if root else None


def _note_new_server_logs() -> None:
    directory = _server_logs_dir()
    if directory and directory.is_dir():
        for path in directory.iterdir():
            _server_logs_seen.setdefault(path, _current_test)


def pytest_sessionstart(session):
    _register_key_generation()
    _attach_handler()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_protocol(item, nextitem):
    global _current_test
    _current_test = item.nodeid
    _attach_handler()
    try:
        return (yield)
    finally:
        _note_new_server_logs()
        _current_test = "(outside any test)"


def _find_leaks(text: str, where: str) -> None:
    for match in _RUN.finditer(text):
        run = match.group()
        for length in _lengths:
            for start in range(len(run) - length + 1):
                found = _created.get(run[start : start + length])
                if found:
                    what, creator = found
                    _leaks.append(f"a {what} created by {creator} appears in {where}")


@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session, exitstatus):
    _note_new_server_logs()
    if not _created:
        return
    for test, text in _output:
        _find_leaks(text, f"the log of {test}")
    for path, test in _server_logs_seen.items():
        if path.is_file():
            _find_leaks(path.read_text(errors="replace"), f"{path.name}, a server of {test}")
    if _leaks:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_terminal_summary(terminalreporter):
    if _leaks:
        terminalreporter.section("secret leaks", sep="=", red=True, bold=True)
        for leak in sorted(set(_leaks)):
            terminalreporter.write_line(f"LEAK: {leak}", red=True)
    elif _created:
        terminalreporter.write_line(
            f"secret leaks: none ({len(_created) // 2} API keys checked against "
            f"{len(_output)} log records and {len(_server_logs_seen)} server logs)"
        )

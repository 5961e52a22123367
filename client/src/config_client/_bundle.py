"""What a bundle must look like before it may replace the one being served, and lookups in it.

The check is deliberately shallow (the server validated the content): it only refuses what
would make `assistant()` or `build_agents()` fail later, so a truncated file or an HTML error
page is never served as a config.
"""

from __future__ import annotations

from typing import Any

Bundle = dict[str, Any]


class BundleError(ValueError):
    """The JSON is not a config bundle."""


class UnknownAssistant(KeyError):
    """No active assistant with that name or id in the bundle being served."""

    def __init__(self, name_or_id: str, known: list[str]):
        super().__init__(name_or_id)
        self.message = (
            f"no active assistant named or with id {name_or_id!r} in the config bundle; "
            f"known: {', '.join(known) or 'none'}"
        )

    def __str__(self) -> str:  # KeyError would print only the quoted key
        return self.message


def check_bundle(data: Any) -> Bundle:
    if not isinstance(data, dict):
        raise BundleError(f"expected a JSON object, got {type(data).__name__}")
    if not isinstance(data.get("revision"), int):
        raise BundleError("/revision is missing or not an integer")
    assistants = data.get("assistants")
    if not isinstance(assistants, list):
        raise BundleError("/assistants is missing or not a list")
    for index, assistant in enumerate(assistants):
        where = f"/assistants/{index}"
        if not isinstance(assistant, dict):
            raise BundleError(f"{where} is not an object")
        for key in ("id", "name"):
            if not isinstance(assistant.get(key), str):
                raise BundleError(f"{where}/{key} is missing or not a string")
        if not isinstance(assistant.get("tools"), list):
            raise BundleError(f"{where}/tools is missing or not a list")
    return data


def index_assistants(bundle: Bundle) -> dict[str, dict[str, Any]]:
    """Each assistant under its id and its name (both unique on the server)."""
    index: dict[str, dict[str, Any]] = {}
    for assistant in bundle["assistants"]:
        index[assistant["id"]] = assistant
        index[assistant["name"]] = assistant
    return index

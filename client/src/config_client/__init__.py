"""Runtime client of the assistant config backend (see client/README.md).

`config_client.agents` (the OpenAI Agents SDK factory) is imported on its own: it needs the
`agents` extra, the client does not.
"""

from config_client._bundle import Bundle, UnknownAssistant
from config_client._client import ConfigClient, ConfigUnavailable
from config_client._http import FetchFailed
from config_client.templates import TemplateError

__all__ = [
    "Bundle",
    "ConfigClient",
    "ConfigUnavailable",
    "FetchFailed",
    "TemplateError",
    "UnknownAssistant",
]

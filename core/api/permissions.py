"""The staff permissions that allow what an API key's scope allows, by name (names, not model
classes: core imports no app).

A staff session is asked for a model's view/add/change/delete permission on each API request
(core.api.auth), and for these lists to move a label or roll back (config_backend.history). A key
is made by a staff user, so a key may carry no more than its maker holds of the same lists
(core.api.keys.key_grant_problems).
"""


def _permissions(actions: tuple[str, ...], models: tuple[tuple[str, str], ...]) -> list[str]:
    return [f"{app}.{action}_{model}" for app, model in models for action in actions]


# What the config is written as: assistants, tools and the links between them, snippets.
CONFIG_MODELS = (
    ("assistants", "assistant"),
    ("tools", "tool"),
    ("tools", "assistanttoollink"),
    ("snippets", "snippet"),
)

# Every GET of the API: the config, its history and labels, and the runtime's threads.
READ_PERMISSIONS = _permissions(
    ("view",),
    (
        *CONFIG_MODELS,
        ("config_backend", "revision"),
        ("config_backend", "label"),
        ("threads", "userassistantthread"),
    ),
)
# Every config write: the API's POST, PUT/PATCH and DELETE of each config model; a rollback or
# an import may do all of them (config_backend.history.services.ROLLBACK_PERMISSIONS).
CONFIG_WRITE_PERMISSIONS = _permissions(("add", "change", "delete"), CONFIG_MODELS)
THREAD_WRITE_PERMISSIONS = _permissions(
    ("add", "change", "delete"), (("threads", "userassistantthread"),)
)
MOVE_LABEL = "config_backend.move_label"
# In addition to MOVE_LABEL, for a label in settings.PROTECTED_LABELS.
MOVE_PROTECTED_LABEL = "config_backend.move_protected_label"
# Approving (or rejecting) another person's request to change a protected label, when
# settings.LABEL_APPROVALS asks for approvals (config_backend.history.approvals). No key has it.
APPROVE_LABEL_MOVE = "config_backend.approve_label_move"

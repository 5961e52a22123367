"""The admin's pages of the configuration's history (docs/contract.md "Revisions, history, labels,
diff, rollback"): Revisions, read-only, with the rollback to one of them; Labels, each moved after a
preview of what the move changes. Both writes show the diff first and ask for confirmation;
config_backend.history's services make them (these views check permissions and ask).

Who may do what (checked on every request, GET and POST, so a forged POST is refused with a
403 like a page the user cannot open):
- Revisions: `view_revision` to read; nobody adds, changes or deletes one.
- Rollback (with or without prune): the API's rule for staff, ROLLBACK_PERMISSIONS: add,
  change and delete on assistants, tools and tool links (every permission an import uses).
- Labels: `view_label` to read; `move_label` to create or move one, set its rollout, promote or
  abort it, and also `move_protected_label` for one in PROTECTED_LABELS.
"""

# Importing the pages registers them.
from config_backend.admin import label_requests, labels, revisions  # noqa: F401

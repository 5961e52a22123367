"""The configuration's history: what changed between two states, the state at a revision,
labels, diffs and rollback (docs/contract.md "Revisions, history, labels, diff, rollback").

core.changes records each revision; this package reads the history back and writes through
config_backend.transfer, the import's validated atomic path.
"""

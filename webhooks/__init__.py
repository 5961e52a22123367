"""Webhooks: signed, at-least-once notifications of config changes (docs/webhooks.md)."""

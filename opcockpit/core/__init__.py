"""Headless core: reconcile, snapshot, operations, alerts. Never imports Textual."""

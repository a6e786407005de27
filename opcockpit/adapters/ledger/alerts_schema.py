"""The alert tables of the ledger (component "alerts"): append migrations, never edit old ones."""

from __future__ import annotations

COMPONENT = "alerts"
MIGRATIONS: list[list[str]] = [
    [
        """CREATE TABLE alerts (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            fingerprint TEXT NOT NULL,
            key TEXT NOT NULL,
            rule TEXT NOT NULL,
            severity TEXT NOT NULL,
            summary TEXT NOT NULL,
            threshold TEXT NOT NULL,
            scope TEXT,
            evidence_json TEXT NOT NULL,
            details_json TEXT NOT NULL,
            state TEXT NOT NULL,
            first_seen TEXT NOT NULL,
            fired_at TEXT NOT NULL,
            last_seen TEXT NOT NULL,
            resolved_at TEXT,
            acked_by TEXT,
            acked_at TEXT,
            ack_comment TEXT,
            muted_until TEXT,
            mute_until_resolved INTEGER NOT NULL DEFAULT 0,
            muted_by TEXT,
            muted_at TEXT,
            mute_comment TEXT
        )""",
        "CREATE UNIQUE INDEX uq_alerts_firing_key ON alerts(key) WHERE state = 'firing'",
        "CREATE INDEX idx_alerts_fingerprint ON alerts(fingerprint, id DESC)",
        "CREATE INDEX idx_alerts_key ON alerts(key, id DESC)",
        """CREATE TABLE alert_pending (
            key TEXT PRIMARY KEY,
            rule TEXT NOT NULL,
            scope TEXT,
            first_seen TEXT NOT NULL,
            last_seen TEXT NOT NULL
        )""",
        """CREATE TABLE alert_deliveries (
            alert_id INTEGER NOT NULL,
            channel TEXT NOT NULL,
            target TEXT NOT NULL,
            status TEXT NOT NULL,
            attempts INTEGER NOT NULL DEFAULT 0,
            rounds INTEGER NOT NULL DEFAULT 0,
            last_error TEXT,
            last_attempt_at TEXT,
            delivered_at TEXT,
            PRIMARY KEY (alert_id, channel)
        )""",
        "CREATE TABLE alert_meta (k TEXT PRIMARY KEY, v TEXT)",
    ],
    [
        # Every ack, not just the last: two operators acking at once (TUI + shell, two connections)
        # must not overwrite each other silently. alerts.acked_* keep the latest, as a summary.
        """CREATE TABLE alert_acks (
            seq INTEGER PRIMARY KEY AUTOINCREMENT,
            alert_id INTEGER NOT NULL,
            who TEXT NOT NULL,
            at TEXT NOT NULL,
            comment TEXT
        )""",
        "CREATE INDEX idx_alert_acks_alert ON alert_acks(alert_id, seq)",
        "INSERT INTO alert_acks(alert_id, who, at, comment)"
        " SELECT id, COALESCE(acked_by, '?'), acked_at, ack_comment FROM alerts WHERE acked_at IS NOT NULL",
    ],
    [
        # A claim per (episode, channel) so several cockpits on one ledger send a notification
        # exactly once: `AlertStore.claim_delivery` takes it, `record_delivery` releases it.
        "ALTER TABLE alert_deliveries ADD COLUMN claimed_by TEXT",
        "ALTER TABLE alert_deliveries ADD COLUMN claimed_until TEXT",
    ],
    [
        # Issue 10 (idle round): a firing alert seen again unchanged is no longer rewritten every
        # round. `held` = 1: kept without being seen (its input was unknown), `last_seen` is the
        # last sighting; 0: seen by the last evaluation, so its last sighting is alert_meta's
        # last_evaluated_at (what `AlertStore` reads back as `Alert.last_seen`).
        "ALTER TABLE alerts ADD COLUMN held INTEGER NOT NULL DEFAULT 0",
        "UPDATE alerts SET held = 1 WHERE state = 'firing' AND last_seen <"
        " COALESCE((SELECT v FROM alert_meta WHERE k = 'last_evaluated_at'), last_seen)",
    ],
]

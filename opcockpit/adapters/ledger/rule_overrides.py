"""Alert rule overrides, TUI-made query rules and saved-query pins in the cockpit ledger.

- `rule_overrides`: one row per (rule, field): a threshold, hold time, severity or `enabled` an
  operator changed from the TUI's rules view. Applied over the `[alerts]` TOML on every
  evaluation (domain/alerts_overrides.py) and shown as overrides by `config show`.
- `query_rules`: query-backed alert rules created from the TUI (the same fields as an
  `[alerts.query.<name>]` table, as JSON); the TOML's rules win on a name clash.
- `query_pins`: a saved query pinned to a hotkey slot (g1..g9 in the Explore tab) and/or to the
  command palette, stored with the saved query's name.

SQLite by default, PostgreSQL for a team (backend.connect/migrate, like the alert store). Every
error is a LedgerError naming the ledger.
"""

from __future__ import annotations

import json
import os
import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from opcockpit.adapters.ledger.backend import LedgerDb, LedgerTarget, connect, migrate
from opcockpit.adapters.ledger.sqlite import guarded

__all__ = ["Override", "Pin", "RuleOverrideStore", "config_show_lines"]

COMPONENT = "rule_overrides"
MIGRATIONS: list[list[str]] = [
    [
        """CREATE TABLE rule_overrides (
            rule TEXT NOT NULL,
            field TEXT NOT NULL,
            value_json TEXT NOT NULL,
            who TEXT NOT NULL DEFAULT '',
            at TEXT NOT NULL,
            PRIMARY KEY (rule, field)
        )""",
        """CREATE TABLE query_rules (
            name TEXT PRIMARY KEY,
            body_json TEXT NOT NULL,
            who TEXT NOT NULL DEFAULT '',
            at TEXT NOT NULL
        )""",
        """CREATE TABLE query_pins (
            name TEXT PRIMARY KEY,
            slot INTEGER UNIQUE,
            palette INTEGER NOT NULL DEFAULT 0,
            who TEXT NOT NULL DEFAULT '',
            at TEXT NOT NULL
        )""",
    ],
]


@dataclass(frozen=True, slots=True)
class Override:
    rule: str
    field: str
    value: Any
    who: str
    at: datetime


@dataclass(frozen=True, slots=True)
class Pin:
    name: str  # the saved query
    slot: int | None  # 1..9: g<slot> in the Explore tab
    palette: bool  # listed in the command palette


def _now() -> str:
    return datetime.now(UTC).isoformat()


class RuleOverrideStore:
    """The three tables of one ledger. Thread-safe (one connection, one lock)."""

    def __init__(self, db: LedgerDb) -> None:
        self.db = db
        self.path = db.where
        self.lock = threading.RLock()
        migrate(db, COMPONENT, MIGRATIONS)

    @classmethod
    def open(cls, target: str | os.PathLike[str] | Path | LedgerTarget | None = None) -> RuleOverrideStore:
        db = connect(target)
        try:
            return cls(db)
        except BaseException:
            db.close()
            raise

    def close(self) -> None:
        with self.lock:
            self.db.close()

    def __enter__(self) -> RuleOverrideStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ overrides

    @guarded
    def overrides(self) -> list[Override]:
        with self.lock:
            rows = self.db.execute(
                "SELECT rule, field, value_json, who, at FROM rule_overrides ORDER BY rule, field"
            ).fetchall()
        return [Override(r, f, json.loads(v), w, datetime.fromisoformat(a)) for r, f, v, w, a in rows]

    @guarded
    def set_override(self, rule: str, field: str, value: Any, who: str) -> None:
        with self.lock, self.db.transaction():
            self.db.execute(
                "INSERT INTO rule_overrides (rule, field, value_json, who, at) VALUES (?, ?, ?, ?, ?)"
                " ON CONFLICT (rule, field) DO UPDATE SET value_json = excluded.value_json,"
                " who = excluded.who, at = excluded.at",
                (rule, field, json.dumps(value), who, _now()),
            )

    @guarded
    def clear_override(self, rule: str, field: str | None = None) -> int:
        """Back to the TOML: one field of `rule`, or all of them."""
        with self.lock, self.db.transaction():
            if field is None:
                cur = self.db.execute("DELETE FROM rule_overrides WHERE rule = ?", (rule,))
            else:
                cur = self.db.execute(
                    "DELETE FROM rule_overrides WHERE rule = ? AND field = ?", (rule, field)
                )
            return int(cur.rowcount or 0)

    # ------------------------------------------------------------------ query rules made in the TUI

    @guarded
    def query_rules(self) -> dict[str, dict[str, Any]]:
        with self.lock:
            rows = self.db.execute("SELECT name, body_json FROM query_rules ORDER BY name").fetchall()
        return {n: json.loads(b) for n, b in rows}

    @guarded
    def save_query_rule(self, name: str, body: dict[str, Any], who: str) -> None:
        with self.lock, self.db.transaction():
            self.db.execute(
                "INSERT INTO query_rules (name, body_json, who, at) VALUES (?, ?, ?, ?)"
                " ON CONFLICT (name) DO UPDATE SET body_json = excluded.body_json, who = excluded.who,"
                " at = excluded.at",
                (name, json.dumps(body, sort_keys=True), who, _now()),
            )

    @guarded
    def remove_query_rule(self, name: str) -> bool:
        with self.lock, self.db.transaction():
            return int(self.db.execute("DELETE FROM query_rules WHERE name = ?", (name,)).rowcount or 0) > 0

    # ------------------------------------------------------------------ pins

    @guarded
    def pins(self) -> list[Pin]:
        with self.lock:
            rows = self.db.execute(  # slots first, in order (NULLs sort differently in SQLite and PG)
                "SELECT name, slot, palette FROM query_pins ORDER BY slot IS NULL, slot, name"
            ).fetchall()
        return [Pin(n, s, bool(p)) for n, s, p in rows]

    @guarded
    def pin(self, name: str, *, slot: int | None, palette: bool, who: str) -> Pin:
        """Pin `name` (slot 1..9 and/or the palette); a slot another query held moves to this one.
        Neither slot nor palette: unpinned."""
        if slot is not None and not 1 <= slot <= 9:
            raise ValueError(f"pin slot must be 1..9, not {slot}")
        with self.lock, self.db.transaction():
            if slot is not None:
                self.db.execute(
                    "UPDATE query_pins SET slot = NULL WHERE slot = ? AND name != ?", (slot, name)
                )
            if slot is None and not palette:
                self.db.execute("DELETE FROM query_pins WHERE name = ?", (name,))
            else:
                self.db.execute(
                    "INSERT INTO query_pins (name, slot, palette, who, at) VALUES (?, ?, ?, ?, ?)"
                    " ON CONFLICT (name) DO UPDATE SET slot = excluded.slot, palette = excluded.palette,"
                    " who = excluded.who, at = excluded.at",
                    (name, slot, int(palette), who, _now()),
                )
            # a query whose only pin was the slot just taken is no longer pinned at all
            self.db.execute("DELETE FROM query_pins WHERE slot IS NULL AND palette = 0")
        return Pin(name, slot, palette)


def config_show_lines(target: str | os.PathLike[str] | LedgerTarget | None, toml: Any) -> list[str]:
    """`config show`'s section for the ledger's rule overrides (toml: the loaded AlertsConfig):
    a commented header and one line per override next to the TOML value it replaces; [] when
    there are none. A ledger that cannot be read is one comment line, never an error (config
    show also runs where the ledger is not reachable)."""
    from opcockpit.domain.alerts_rules_apply import override_lines
    from opcockpit.ports.ledger import LedgerError

    t = LedgerTarget.parse(target)
    if t.kind == "sqlite" and (t.path is None or not Path(t.path).exists()):
        return []  # no ledger yet: no overrides (and showing the config never creates one)
    try:
        with RuleOverrideStore.open(t) as st:
            rows, made = st.overrides(), st.query_rules()
    except LedgerError as exc:
        return ["", f"# rule overrides: not read ({exc})"]
    if not rows and not made:
        return []
    out = ["", "# overrides in the ledger (Alerts tab, R: the rules view); they win over the TOML"]
    out += override_lines(toml, [(o.rule, o.field, o.value, o.who, o.at) for o in rows])
    for name, body in made.items():
        out.append(f'# [alerts.query."{name}"] made in the TUI: {json.dumps(body, sort_keys=True)}')
    return out

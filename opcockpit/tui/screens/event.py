"""One provider event alone (Enter on the Provider events tab): every field, then the whole payload.

The table cuts a payload to one line; here it is pretty JSON (`j` toggles YAML-ish), scrollable
both ways and copied whole by `c`. A LEON row shows its `provider_events` columns and the parsed
`payload_json`; a cockpit-ledger row (observed / received) shows the stored event itself (before,
after, data), so nothing the ledger kept is hidden. Payloads come from providers and webhooks:
secrets are masked (domain.inspect) before anything is drawn or copied.

Enter / `t` opens the thread detail of the event's lease (the reason to look at an event is
usually "what did this do to my agent?"); `y` asks the provider for the instance's raw record.
"""

from __future__ import annotations

import json
from typing import Any, ClassVar

from rich.text import Text
from textual.binding import Binding, BindingType

from opcockpit.domain.events import Event
from opcockpit.domain.inspect import redact_record, render_record
from opcockpit.domain.models import ProviderEventRecord
from opcockpit.domain.secrets import scrub
from opcockpit.domain.text import safe_text
from opcockpit.tui.rows import fmt_ts
from opcockpit.tui.screens.inspect import InspectScreen, open_raw_record, title_line

__all__ = ["EventDetailScreen", "event_detail_text"]

SOURCE_WORDS = {
    "LEON": "LEON (sandbox.db provider_events: a webhook LEON stored)",
    "observed": "observed (the cockpit saw it in a listing or a look)",
    "received": "received (a webhook stored by opcockpit serve)",
}


def _payload(record: ProviderEventRecord, ledger: Event | None) -> tuple[str, Any]:
    """(heading, JSON value) of what the event carried, secrets masked."""
    if ledger is not None:
        return "Stored event", redact_record(ledger.as_dict())
    raw = record.payload_json
    if raw is None or raw == "":
        return "Payload", None
    try:
        return "Payload", redact_record(json.loads(raw))
    except ValueError:  # LEON stores what the webhook sent: not always JSON
        return "Payload (not JSON, as stored)", scrub(raw)


def event_detail_text(
    source: str,
    record: ProviderEventRecord,
    thread_id: str | None,
    ledger: Event | None = None,
    *,
    style: str = "json",
) -> str:
    """The screen's text (also what `c` copies): aligned fields, a blank line, the payload."""
    fields: list[tuple[str, str]] = [
        ("Source", SOURCE_WORDS.get(source, source)),
        ("Event", record.event_type),
        ("Time (UTC)", fmt_ts(record.created_at) or "(no time)"),
        ("Provider", record.provider_name or "(none)"),
        ("Instance", record.instance_id or "(none)"),
        ("Lease", record.matched_lease_id or "(matched no lease)"),
        ("Thread", thread_id or "(unknown)"),
        ("Event id", f"c{record.event_id}" if ledger is not None else str(record.event_id)),
    ]
    if ledger is not None:
        fields.append(("Observed", fmt_ts(ledger.observed_at)))
    width = max(len(label) for label, _ in fields)
    lines = [f"{label:<{width}}  {safe_text(value)}" for label, value in fields]
    heading, value = _payload(record, ledger)
    lines += ["", f"── {heading} " + "─" * 20]
    if value is None:
        lines.append("(no payload)")
    elif isinstance(value, str):
        lines.append(safe_text(value, single_line=False))
    else:
        lines.append(render_record(value, style=style))
    return "\n".join(lines)


class EventDetailScreen(InspectScreen):
    """The viewer of InspectScreen (scroll both ways, `c` copy, `j` JSON/YAML) over one event."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("enter", "open_thread", "Thread"),
        Binding("t", "open_thread", "Thread", show=False),
        Binding("y", "raw_record", "Raw"),
    ]

    def __init__(
        self, source: str, record: ProviderEventRecord, thread_id: str | None, ledger: Event | None = None
    ) -> None:
        async def load(style: str) -> str:
            return event_detail_text(source, record, thread_id, ledger, style=style)

        super().__init__(f"{record.provider_name} {record.event_type}", record=load)
        self.record = record
        self.source = source
        self.style = "json"  # a payload is JSON: shown as such first

    def _title(self) -> Text:
        return title_line(" event ", self.title_text, (f"  {self.source}  {self.style}", "dim"))

    def action_open_thread(self) -> None:
        lease = self.record.matched_lease_id
        if lease is None:
            self.notify("this event matched no lease: no thread to open", markup=False)
            return
        self.app.open_lease(lease)  # type: ignore[attr-defined]  # GroundTruthTab: says if it is gone

    def action_raw_record(self) -> None:
        open_raw_record(self.app, self.record.provider_name, self.record.instance_id or None)

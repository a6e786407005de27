"""Orphan detail (Enter on an orphan): what the provider says about an instance no lease accounts
for — state, name, created, labels, the lease it claims and why that claim does not hold — and the
provider's raw record below it (image and the rest), redacted, loaded through the inspect service.
Keys: `y` the raw record full screen, `l` logs, `t` the thread detail of the claimed lease.
"""

from __future__ import annotations

from typing import Any, ClassVar

from rich.table import Table
from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.screen import Screen
from textual.widgets import Static

from opcockpit.domain.inspect import render_record
from opcockpit.domain.models import OrphanRow
from opcockpit.domain.text import error_line, safe_text
from opcockpit.tui.rows import ts
from opcockpit.tui.screens.inspect import open_logs, open_raw_record, title_line
from opcockpit.tui.widgets.footer import StableFooter

__all__ = ["OrphanScreen", "claim_words", "orphan_card"]

_CLAIM = {
    "lease_exists": "claims a lease the DB knows, which points at another instance",
    "lease_points_elsewhere": "claims a lease whose current instance is another one",
    "lease_missing": "claims a lease sandbox.db does not have (deleted, or another LEON's)",
    None: "carries no lease label",
}


def claim_words(o: OrphanRow) -> str:
    return _CLAIM.get(o.claim, o.claim or "")


def _confirmed(o: OrphanRow) -> str:
    if o.confirmed is None:
        return "listed by the provider (its listing is authoritative)"
    if o.confirmed:
        return "confirmed by a GET of the instance"
    return "awaiting a GET to confirm (the provider's listing lags)"


def orphan_card(o: OrphanRow, image: str | None = None) -> Table:
    """Key fields aligned, words where a short form would need a legend."""
    card = Table.grid(padding=(0, 2))
    card.add_column(style="bold", no_wrap=True)
    card.add_column(overflow="fold")
    card.add_row("Instance", f"{safe_text(o.provider)}/{safe_text(o.instance_id)}")
    card.add_row("Name", safe_text(o.name or "-"))
    card.add_row("State", f"{safe_text(o.provider_state)} (provider's word: {safe_text(o.raw_state)})")
    card.add_row("Image", safe_text(image or "-"))
    card.add_row("Created", ts(o.created_at))
    lease = safe_text(o.claimed_lease_id or "-")
    card.add_row("Claims lease", f"{lease}: {claim_words(o)}")
    card.add_row("Orphan", _confirmed(o))
    if o.resources is not None:
        r = o.resources
        cpu = "-" if r.cpu_count is None else f"{r.cpu_count:g}"
        mem = "-" if r.memory_mb is None else f"{r.memory_mb:g} MB"
        card.add_row("Resources", f"cpu {cpu}  memory {mem}")
    labels = Text()
    for n, (k, v) in enumerate(sorted(o.labels.items())):
        labels.append(("\n" if n else "") + f"{safe_text(k)}=", style="dim")
        labels.append(safe_text(v))
    card.add_row("Labels", labels if o.labels else Text("none", style="dim"))
    return card


def _image(record: Any) -> str | None:
    """The image named by a provider record (Docker `Config.Image`, else a top-level `image`/`template`)."""
    if not isinstance(record, dict):
        return None
    config = record.get("Config")
    if isinstance(config, dict) and isinstance(config.get("Image"), str):
        return str(config["Image"])
    for key in ("image", "Image", "templateID", "template", "snapshot"):
        if isinstance(record.get(key), str):
            return str(record[key])
    detail = record.get("GetSessionDetail")  # AgentBay: one key per call (adapters/providers/agentbay)
    if isinstance(detail, dict) and isinstance(detail.get("ImageId"), str):
        return str(detail["ImageId"])
    return None


class OrphanScreen(Screen[None]):
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "app.pop_screen", "Back"),
        Binding("y", "raw_record", "Raw record"),
        Binding("l", "logs", "Logs"),
        Binding("t", "open_lease", "Claimed lease"),
        Binding("c", "copy", "Copy id"),
        Binding("q", "app.quit", "Quit"),
    ]
    DEFAULT_CSS = """
    OrphanScreen #orphan-card { height: auto; padding: 0 1; }
    OrphanScreen #orphan-raw { height: auto; padding: 1 1 0 1; }
    """

    def __init__(self, orphan: OrphanRow) -> None:
        super().__init__()
        self.orphan = orphan
        self.record: dict[str, Any] | None = None
        self.raw_text = ""
        self.raw_error: str | None = None
        self.loaded = False

    def compose(self) -> ComposeResult:
        with VerticalScroll():
            yield Static(self._heading(), id="orphan-heading")
            yield Static(orphan_card(self.orphan), id="orphan-card")
            yield Static(Text("raw record: loading…", style="italic dim"), id="orphan-raw")
        yield StableFooter()

    def _heading(self) -> Text:
        note = f"  no lease accounts for it at {safe_text(self.orphan.provider)}"
        return title_line(" ORPHAN ", self.orphan.instance_id, (note, "dim"), badge_style="bold reverse red")

    def on_mount(self) -> None:
        self.load_record()

    @work(exclusive=True, group="orphan-record")
    async def load_record(self) -> None:
        service = getattr(getattr(self.app, "cockpit", None), "inspect", None)
        o = self.orphan
        raw = self.query_one("#orphan-raw", Static)
        if service is None or not service.can_inspect(o.provider):
            raw.update(Text(f"raw record: {o.provider} cannot show one", style="italic dim"))
            self.loaded = True
            return
        try:
            self.record = await service.raw_record(o.provider, o.instance_id)
        except Exception as exc:  # InspectError: one line, the card stays
            self.raw_error = error_line(exc)
            raw.update(Text(f"raw record: ✗ {self.raw_error}", style="bold red"))
            self.loaded = True
            return
        self.raw_text = render_record(self.record)
        self.query_one("#orphan-card", Static).update(orphan_card(o, _image(self.record)))
        body = Text("raw record (y: full screen)\n", style="bold")
        body.append(self.raw_text, style="")
        raw.update(body)
        self.loaded = True

    def action_raw_record(self) -> None:
        open_raw_record(self.app, self.orphan.provider, self.orphan.instance_id)

    def action_logs(self) -> None:
        open_logs(self.app, self.orphan.provider, self.orphan.instance_id)

    def action_open_lease(self) -> None:
        lease = self.orphan.claimed_lease_id
        known = getattr(self.app, "_rows_by_key", {})
        if lease and lease in known:
            self.app.open_lease(lease)  # type: ignore[attr-defined]
        else:
            self.notify("this orphan claims no lease the DB knows", markup=False)

    def action_copy(self) -> None:
        self.app.copy_to_clipboard(self.orphan.instance_id)
        self.notify(f"copied {self.orphan.instance_id}", markup=False)

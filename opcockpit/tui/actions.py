"""Operator actions in the cockpit: pause, resume, destroy, adopt, and the audit view of them.

Flow (docs/architecture.md, "One action"): the visible marked rows of the focused table (else its
cursor row; on a thread detail screen, its lease) become `Target`s -> `_begin` shows the
confirmation (every action by default; `[tui] confirm = "destructive"` lets pause/resume run at
once) naming the targets, what is skipped and why, and the marked rows the filter hides (acted on
only when the operator includes them) -> `_confirmed` asks Operations for a plan and marks the
rows pending (the optimistic overlay) -> `_execute` runs it in a worker -> `_observe` settles the
pending marks against each later refresh (converged, failed, timed out). A greyed key pressed
anyway says why in a toast (`explain_disabled`).

`ActionsMixin` is a mixin of CockpitApp; the write keys' bindings stay in the app's one list
(footer order is importance).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from textual import work

from opcockpit.domain.models import GroundTruth, GroundTruthRow, OrphanRow
from opcockpit.domain.targets import Action, Target, expand_leaks
from opcockpit.domain.text import error_line
from opcockpit.services.ops_track import Operation, OpStatus
from opcockpit.tui.data import clean
from opcockpit.tui.opsview import OpsOverlay, applicable, summarize
from opcockpit.tui.screens.audit import AuditRow, AuditScreen
from opcockpit.tui.screens.confirm import AdoptScreen, ConfirmActionScreen, ConfirmDestroyScreen
from opcockpit.tui.screens.thread import ThreadDetailScreen

if TYPE_CHECKING:
    from textual.app import App

    from opcockpit.services.operations import Operations, Plan
    from opcockpit.tui.table.widget import KeyedTable
    from opcockpit.wiring import Cockpit

    _AppBase = App[int]  # the mixin's host, for type checkers only
else:
    _AppBase = object

__all__ = ["WRITE_ACTIONS", "ActionsMixin"]

WRITE_ACTIONS = ("pause", "resume", "destroy", "adopt")
_TARGET_TABS = ("ground-truth", "orphans")
CONFIRM_MODES = ("all", "destructive")  # [tui] confirm
_LISTED = 5  # ids named in one toast


def _ids(items: list[tuple[Target, str]] | list[Target]) -> str:
    """'a (why); b (why) +3 more' for toasts."""
    parts = [f"{t[0].key} ({t[1]})" if isinstance(t, tuple) else t.key for t in items[:_LISTED]]
    more = f" +{len(items) - _LISTED} more" if len(items) > _LISTED else ""
    return "; ".join(parts) + more


def _intended(action: Action) -> str | None:
    # Adopt changes sandbox.db only (no provider state): the overlay says the orphan becomes a lease.
    return "lease" if action is Action.ADOPT else action.provider_state


class ActionsMixin(_AppBase):
    """CockpitApp's operator actions and audit view (mixin); see the module docstring."""

    ops: Operations | None
    read_only: bool
    overlay: OpsOverlay
    ground_truth: GroundTruth | None
    cockpit: Cockpit | None
    _rows_by_key: dict[str, GroundTruthRow]
    _orphans_by_key: dict[str, OrphanRow] | None
    _audit_loader: Callable[[int], Any] | None
    _audit_error: str | None
    confirm: str

    if TYPE_CHECKING:  # the app's and the tabs' (a runtime stub would shadow them in the MRO)

        @property
        def active_tab(self) -> str: ...

        @property
        def gt_table(self) -> KeyedTable: ...

        @property
        def orphans_table(self) -> KeyedTable: ...

        def active_table(self) -> KeyedTable | None: ...

        def request_refresh(self) -> None: ...

        def _render_tables(self) -> None: ...

        def _show_header(self) -> None: ...

    # ------------------------------------------------------------------ targets

    def _detail_row(self) -> GroundTruthRow | None:
        """The lease of the thread detail screen on top (its p/r/ctrl+d act on it), else None."""
        screen = self.screen
        if not isinstance(screen, ThreadDetailScreen):
            return None
        return self._rows_by_key.get(screen.row.lease_id, screen.row)

    def _check_write(self, action: str) -> bool | None:
        """Write keys are never hidden on the main view: greyed (None) when they do not apply."""
        detail = self._detail_row() if len(self.screen_stack) > 1 else None
        if len(self.screen_stack) > 1 and (detail is None or action == "adopt"):
            return False  # a help/dialog screen is on top: main-view keys do not apply there
        tab = self.active_tab
        if detail is None and (tab not in _TARGET_TABS or (action == "adopt" and tab != "orphans")):
            return False  # not this view's keys (the footer shows the focused view's keys)
        if self.read_only or self.ops is None or self.ops.read_only:
            return None
        act = Action(action)
        targets, _hidden = self._op_targets(act)
        if not targets:
            return None
        return True if any(applicable(self.ops, act, t, self.overlay) for t in targets) else None

    def explain_disabled(self, action: Action) -> None:
        """A greyed write key was pressed: say why instead of doing nothing (issue 15)."""
        verb = action.value
        if self.read_only or self.ops is None or self.ops.read_only:
            self.notify(
                f"{verb}: read-only mode, the cockpit makes no changes", severity="warning", markup=False
            )
            return
        targets, hidden = self._op_targets(action)
        if not targets:
            extra = f" ({len(hidden)} marked, hidden by the filter)" if hidden else ""
            self.notify(f"{verb}: no row selected{extra}", severity="warning", markup=False)
            return
        why = [(t, applicable(self.ops, action, t, self.overlay, why=True) or "") for t in targets]
        self.notify(f"{verb} does not apply: {_ids(why)}", severity="warning", markup=False)

    def _target(self, key: str) -> Target | None:
        # Built per selected key (not an index of all rows: check_action runs on every cursor move
        # and a 10k-row index per refresh would cost more than the refresh's table update).
        row = self._rows_by_key.get(key)
        if row is not None:
            return Target.of_row(row)
        if self._orphans_by_key is None:
            gt = self.ground_truth
            self._orphans_by_key = {o.key: o for o in gt.orphans} if gt is not None else {}
        orphan = self._orphans_by_key.get(key)
        return Target.of_orphan(orphan) if orphan is not None else None

    def _selection(self) -> tuple[list[str], list[str]]:
        """Row keys: (visible marked rows, else the cursor row; marked rows the filter hides)."""
        if self.active_tab not in _TARGET_TABS:
            return [], []
        table = self.active_table()
        if table is None:
            return [], []
        hidden = table.model.hidden_marks()
        visible = sorted(table.marked - hidden)
        return visible or ([table.cursor_key] if table.cursor_key else []), sorted(hidden)

    def selected_targets(self) -> list[Target]:
        """The visible marked rows of the focused table, else its cursor row (k9s/htop marking);
        on a thread detail screen, its lease."""
        row = self._detail_row()
        if row is not None:
            return [Target.of_row(row)]
        keys, _hidden = self._selection()
        return [t for t in map(self._target, keys) if t is not None]

    def _op_targets(self, action: Action) -> tuple[list[Target], list[Target]]:
        """(the selected targets, the hidden marked ones); for destroy, a destroyed lease that
        leaked is its live instances."""
        chosen = self.selected_targets()
        hidden: list[Target] = []
        if self._detail_row() is None:
            hidden = [t for t in map(self._target, self._selection()[1]) if t is not None]
        if action is Action.DESTROY:
            return expand_leaks(chosen, self.ground_truth), expand_leaks(hidden, self.ground_truth)
        return chosen, hidden

    # ------------------------------------------------------------------ the flow

    def action_pause(self) -> None:
        self._begin(Action.PAUSE)

    def action_resume(self) -> None:
        self._begin(Action.RESUME)

    def action_destroy(self) -> None:
        self._begin(Action.DESTROY)

    def action_adopt(self) -> None:
        self._begin(Action.ADOPT)

    def _begin(self, action: Action) -> None:
        ops = self.ops
        state = self._check_write(action.value)
        if ops is None or self.read_only or state is not True:
            if state is None:
                self.explain_disabled(action)
            return  # a binding invoked anyway (palette, tests) does nothing else
        on_detail = self._detail_row() is not None
        chosen, hidden_all = self._op_targets(action)
        targets = [t for t in chosen if applicable(ops, action, t, self.overlay)]
        hidden = [t for t in hidden_all if applicable(ops, action, t, self.overlay)]
        skipped = [
            (t, applicable(ops, action, t, self.overlay, why=True) or "")
            for t in chosen + hidden_all
            if t not in targets and t not in hidden
        ]
        marks = () if on_detail else tuple(self._selection()[0])

        def run(go: bool, dialog: ConfirmActionScreen | ConfirmDestroyScreen | None = None) -> None:
            if not go:
                return
            picked = dialog.chosen if dialog is not None else targets
            left = [t for t in hidden if t not in picked]
            acted = set(marks) | {t.key for t in picked}
            self._confirmed(action, picked, None, skipped=skipped, left_out=left, consumed=acted)

        if action is Action.DESTROY:
            destroy = ConfirmDestroyScreen(targets, skipped, hidden)
            self.push_screen(destroy, lambda ok: run(bool(ok), destroy))
        elif action is Action.ADOPT:
            adopt_hidden = hidden

            def adopted(thread: str | None) -> None:
                if thread is not None:
                    self._confirmed(
                        action,
                        targets,
                        thread or None,
                        skipped=skipped,
                        left_out=adopt_hidden,
                        consumed=set(marks),
                    )

            self.push_screen(AdoptScreen(targets, skipped), adopted)
        elif self.confirm == "all" or hidden:
            # Reversible: one key confirms. Hidden marked rows always ask (they are listed there).
            dialog = ConfirmActionScreen(action.value, targets, skipped, hidden)
            self.push_screen(dialog, lambda ok: run(bool(ok), dialog))
        else:
            run(True)  # [tui] confirm = "destructive": pause/resume run at once, like lazydocker's `p`

    def _confirmed(
        self,
        action: Action,
        targets: list[Target],
        thread_id: str | None,
        *,
        skipped: list[tuple[Target, str]] | None = None,
        left_out: list[Target] | None = None,
        consumed: set[str] | None = None,
    ) -> None:
        ops = self.ops
        verb = action.value
        if skipped:  # never dropped without a word (issue 15): what, why, and that it stays marked
            self.notify(f"{verb}: skipped {len(skipped)}: {_ids(skipped)}", severity="warning", markup=False)
        if left_out:
            self.notify(
                f"{verb}: {len(left_out)} marked row{'s' if len(left_out) != 1 else ''} hidden by the "
                f"filter left out (still marked): {_ids(left_out)}",
                markup=False,
            )
        if ops is None or not targets:
            return
        try:
            plan = ops.plan(action, targets, seen=self.ground_truth, thread_id=thread_id)
        except Exception as exc:
            self.notify(f"{verb}: {error_line(exc)}", severity="error", markup=False)
            return
        if plan.errors:
            self.notify(f"{verb}: {'; '.join(plan.errors)}", severity="error", markup=False)
            return
        gone = set(consumed or ()) - {t.key for t, _why in skipped or ()}
        for table in (self.gt_table, self.orphans_table):
            if table.model.unmark(gone):  # the acted-on marks are consumed; skipped, hidden ones stay
                table.refresh()
                self._sync_filter_status()
        for t in plan.allowed:
            self.overlay.start(t.key, verb, _intended(action))
        self._render_tables()
        self._show_header()
        self.refresh_bindings()
        self._execute(plan)

    @work(group="operations", exit_on_error=False)
    async def _execute(self, plan: Plan) -> None:
        assert self.ops is not None
        try:
            results = await self.ops.execute(plan)
        except Exception as exc:
            for t in plan.allowed:
                self.overlay.fail(t.key, plan.action.value, error_line(exc))
            self.notify(f"{plan.action.value} failed: {error_line(exc)}", severity="error", markup=False)
            results = []
        for op in results:
            if op.status is OpStatus.PENDING:
                self.overlay.attach(op)
            else:
                self.overlay.fail(op.key, op.action.value, op.error or op.message, op)
        if results:
            text, severity = summarize(plan.action.value, results)
            self.notify(text, severity=severity, markup=False, timeout=8 if severity == "error" else 5)
        await self._look(plan)
        self._render_tables()
        self._show_header()
        self.refresh_bindings()
        self.request_refresh()  # observe the result (OperationTracker) as soon as possible

    async def _look(self, plan: Plan) -> None:
        """Tell a paced collector which instances the action changed: it GETs just those, so the
        next refresh observes the result without waiting for the provider's next full listing."""
        look = getattr(getattr(self, "source", None), "look", None)
        if look is None:
            return
        by_provider: dict[str, set[str]] = {}
        for t in plan.allowed:
            if t.instance_id:
                by_provider.setdefault(t.provider, set()).add(t.instance_id)
        for provider, ids in by_provider.items():
            try:
                await look(provider, ids)
            except Exception as exc:  # best effort: the next full listing observes it anyway
                self.log.warning(f"look {provider}: {error_line(exc)}")

    def _observe(self, gt: GroundTruth) -> None:
        """After every refresh: settle pending operations against what was observed."""
        if self.ops is None:
            return
        settled: list[Operation] = self.ops.tracker.observe(gt)
        if not settled:
            return
        done, bad = [], []
        for op in settled:
            if op.status is OpStatus.CONVERGED:
                self.overlay.converged(op)
                done.append(op)
            else:
                self.overlay.fail(op.key, op.action.value, op.error or op.last_reason or op.status.value, op)
                bad.append(op)
        if done:
            keys = ", ".join(op.new_lease_id or op.key for op in done[:3])
            more = f" +{len(done) - 3}" if len(done) > 3 else ""
            self.notify(f"{done[0].action.value} converged: {keys}{more}", markup=False)
        for op in bad[:3]:
            self.notify(
                f"{op.action.value} {op.status.value} on {op.key}: {op.error or op.last_reason}",
                severity="error",
                markup=False,
                timeout=10,
            )
        self._render_tables()
        self._show_header()
        self.refresh_bindings()

    # ------------------------------------------------------------------ audit view

    def action_audit(self) -> None:
        self.push_screen(AuditScreen(self._load_audit))

    def _load_audit(self, limit: int) -> list[AuditRow]:
        """Audit entries (worker thread); a ledger that cannot be read raises LedgerUnavailable."""
        from opcockpit.tui.alerting import LedgerUnavailable, ledger_problem, ledger_reason

        try:
            entries = self._read_audit(limit)
        except Exception as exc:
            if not ledger_problem(exc):
                raise
            unavailable = LedgerUnavailable(self._audit_ledger_file(), ledger_reason(exc))
            self._audit_error = str(unavailable)
            self.call_from_thread(self._show_header)
            raise unavailable from exc
        if self._audit_error is not None:
            self._audit_error = None
            self.call_from_thread(self._show_header)
        return entries

    def _audit_log(self) -> Any:
        """The audit log the app was wired with: Operations', else the Cockpit's (None: neither)."""
        audit = getattr(self.ops, "audit", None)
        if audit is None and self.cockpit is not None:
            audit = self.cockpit.audit
        return audit

    def _audit_ledger_file(self) -> str:
        owner = getattr(self._audit_loader, "__self__", None) or self._audit_log()
        path = getattr(owner, "path", None)
        if path is None and self.cockpit is not None:
            path = self.cockpit.ledger_path
        return str(path) if path is not None else "(no ledger)"

    def _read_audit(self, limit: int) -> list[AuditRow]:
        if self._audit_loader is not None:
            return clean(list(self._audit_loader(limit)))
        audit = self._audit_log()
        # No ledger wired (a bare app in a test): nothing to show, and never the operator's own file.
        return clean(list(audit.list(limit))) if audit is not None else []

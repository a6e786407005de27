"""Operator actions in the cockpit: pause, resume, destroy, adopt, and the audit view of them.

Flow (docs/architecture.md, "One action"): the marked rows of the focused table (else its cursor
row) become `Target`s -> `_begin` shows the confirmation the action needs (destroy, adopt; pause
and resume are reversible and run at once) -> `_confirmed` asks Operations for a plan and marks
the rows pending (the optimistic overlay) -> `_execute` runs it in a worker -> `_observe` settles
the pending marks against each later refresh (converged, failed, timed out).

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
from opcockpit.tui.screens.confirm import AdoptScreen, ConfirmDestroyScreen

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

    def _check_write(self, action: str) -> bool | None:
        """Write keys are never hidden on the main view: greyed (None) when they do not apply."""
        if len(self.screen_stack) > 1:
            return False  # a detail/help/dialog screen is on top: main-view keys do not apply there
        tab = self.active_tab
        if tab not in _TARGET_TABS or (action == "adopt" and tab != "orphans"):
            return False  # not this view's keys (the footer shows the focused view's keys)
        if self.read_only or self.ops is None or self.ops.read_only:
            return None
        act = Action(action)
        targets = self._op_targets(act)
        if not targets:
            return None
        return True if any(applicable(self.ops, act, t, self.overlay) for t in targets) else None

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

    def selected_targets(self) -> list[Target]:
        """The marked rows of the focused table, else its cursor row (k9s/htop marking)."""
        if self.active_tab not in _TARGET_TABS:
            return []
        table = self.active_table()
        if table is None:
            return []
        keys = sorted(table.marked) or ([table.cursor_key] if table.cursor_key else [])
        return [t for t in map(self._target, keys) if t is not None]

    def _op_targets(self, action: Action) -> list[Target]:
        """The selected targets; for destroy, a destroyed lease that leaked is its live instances."""
        chosen = self.selected_targets()
        return expand_leaks(chosen, self.ground_truth) if action is Action.DESTROY else chosen

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
        if ops is None or self.read_only or self._check_write(action.value) is not True:
            return  # the key is greyed; a binding invoked anyway (palette, tests) does nothing
        chosen = self._op_targets(action)
        targets = [t for t in chosen if applicable(ops, action, t, self.overlay)]
        skipped = [
            (t, applicable(ops, action, t, self.overlay, why=True) or "") for t in chosen if t not in targets
        ]
        if action is Action.DESTROY:
            self.push_screen(
                ConfirmDestroyScreen(targets, skipped),
                lambda ok: self._confirmed(action, targets, None) if ok else None,
            )
        elif action is Action.ADOPT:

            def adopted(thread: str | None) -> None:
                if thread is not None:
                    self._confirmed(action, targets, thread or None)

            self.push_screen(AdoptScreen(targets, skipped), adopted)
        else:
            # pause/resume are reversible: run at once, like lazydocker's `p` (no dialog)
            self._confirmed(action, targets, None)

    def _confirmed(self, action: Action, targets: list[Target], thread_id: str | None) -> None:
        ops = self.ops
        if ops is None or not targets:
            return
        try:
            plan = ops.plan(action, targets, seen=self.ground_truth, thread_id=thread_id)
        except Exception as exc:
            self.notify(f"{action.value}: {error_line(exc)}", severity="error", markup=False)
            return
        if plan.errors:
            self.notify(f"{action.value}: {'; '.join(plan.errors)}", severity="error", markup=False)
            return
        for table in (self.gt_table, self.orphans_table):
            table.clear_marks()
        for t in plan.allowed:
            self.overlay.start(t.key, action.value, _intended(action))
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
        self._render_tables()
        self._show_header()
        self.refresh_bindings()
        self.request_refresh()  # observe the result (OperationTracker) as soon as possible

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

"""The steps of one operator action, by target kind: a lease (intent -> provider -> outcome, LEON's
way), an orphan or leaked instance (provider only), an adoption (a new lease). `Operations`
(services.operations) runs them under its locks, gates and audit; this mixin holds the steps.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable
from dataclasses import replace
from typing import Any

from opcockpit.domain.models import Instance, NormalState
from opcockpit.domain.targets import Action
from opcockpit.ports.errors import SourceError
from opcockpit.ports.leon import LeonAccess, LeonWriterPort, WriteError
from opcockpit.ports.provider import (
    ActionOutcome,
    ActionResult,
    Capabilities,
    NotFound,
    ProviderAdapter,
    Unavailable,
)
from opcockpit.services.ops_plan import (
    DEFAULT_WORKSPACE,
    _Failed,
    _Refuse,
    _Unknown,
    clip,
    leon_state,
    one,
    unknown_text,
)
from opcockpit.services.ops_track import Operation, OpStatus

__all__ = ["ActionSteps"]


class ActionSteps:
    """Mixin of `Operations`: re-reading the truth and carrying out one action."""

    # Provided by Operations.
    db_path: str
    operator: str
    read_only: bool
    _in_flight: dict[str, tuple[LeonWriterPort, Any]]

    def _leon(self) -> LeonAccess:
        raise NotImplementedError

    def writer(self) -> LeonWriterPort:
        raise NotImplementedError

    def adapter(self, provider: str) -> ProviderAdapter | None:
        raise NotImplementedError

    def _caps(self, provider: str) -> Capabilities:
        raise NotImplementedError

    async def _audit_begin(self, op: Operation) -> None:
        raise NotImplementedError

    # ------------------------------------------------------------------ re-reading the truth

    async def _fresh(self, op: Operation) -> Instance | None:
        """A fresh GET of the target instance; None when the provider says it is gone."""
        t = op.target
        assert t.instance_id is not None
        try:
            return await self._get(t.provider, t.instance_id)
        except Exception as exc:
            raise _Refuse(f"cannot verify {t.instance_key} at the provider right now: {one(exc)}") from None

    async def _db_lease(self, lease_id: str) -> Any:
        try:
            async with self._leon().sandbox_reader(self.db_path) as reader:
                return await reader.lease(lease_id)
        except SourceError as exc:
            raise _Refuse(f"cannot re-read sandbox.db: {exc}") from None

    async def _binding_leases(self, provider: str, ids: Iterable[str]) -> list[str]:
        wanted = set(ids)
        found: list[str] = []
        try:
            async with self._leon().sandbox_reader(self.db_path) as reader:
                for iid in wanted:
                    for lease in await reader.find_leases(iid):
                        if lease.provider_name == provider and lease.current_instance_id in wanted:
                            found.append(lease.lease_id)
        except SourceError as exc:
            raise _Refuse(f"cannot re-read sandbox.db: {exc}") from None
        return sorted(set(found))

    # ------------------------------------------------------------------ lease actions

    def _satisfied(self, action: Action, inst: Instance | None, provider: str) -> bool:
        if action is Action.DESTROY:
            return inst is None
        if inst is None:
            return False
        if action is Action.PAUSE:
            return inst.state is NormalState.PAUSED or (
                inst.state is NormalState.STOPPED and self._caps(provider).pause_is_stop
            )
        return inst.state is NormalState.RUNNING

    async def _lease_action(self, op: Operation, stage: Callable[[str], None]) -> None:
        t, action = op.target, op.action
        assert t.lease_id is not None
        lease = await self._db_lease(t.lease_id)
        if lease is None:
            raise _Refuse(f"lease {t.lease_id} no longer exists in sandbox.db")
        if lease.provider_name != t.provider:
            raise _Refuse(
                f"lease {t.lease_id} now belongs to provider {lease.provider_name}, not {t.provider}"
            )
        if lease.current_instance_id != t.instance_id:
            raise _Refuse(
                f"lease {t.lease_id} changed since you looked: instance {t.instance_id or '(none)'} -> "
                f"{lease.current_instance_id or '(none)'}; refresh and retry"
            )
        op.before = {
            "desired_state": lease.desired_state,
            "observed_state": lease.observed_state,
            "instance_id": lease.current_instance_id,
            "version": lease.version,
            "provider_state": t.seen_provider_state,
        }
        desired = action.desired_state
        target_obs = action.observed_state
        db_done = lease.desired_state == desired and lease.observed_state == target_obs
        inst: Instance | None = None
        if t.instance_id is not None:
            inst = await self._fresh(op)
            op.before["provider_state"] = inst.state.value if inst else "gone"
            if inst is None and action is not Action.DESTROY:
                raise _Refuse(f"instance {t.instance_id} is gone at the provider; nothing to {action.value}")
        already = self._satisfied(action, inst, t.provider) if t.instance_id is not None else db_done
        if op.dry_run:
            op.status = OpStatus.PLANNED
            op.outcome = "already" if already else None
            op.message = (
                f"would {action.value}: already {'gone' if action is Action.DESTROY else target_obs}"
                if already
                else f"would {action.value} {t.describe()}"
            )
            return
        if already and db_done:
            op.outcome = "already"
            op.message = f"already {'gone' if action is Action.DESTROY else target_obs}; nothing to do"
            op.after = dict(op.before)
            return
        await self._audit_begin(op)
        writer = self.writer()
        payload = {"operator": self.operator, "op_id": op.op_id, "via": "opcockpit"}
        try:
            intent = await asyncio.to_thread(
                writer.write_intent,
                t.lease_id,
                action.value,
                expect_instance_id=t.instance_id,
                payload=payload,
            )
        except WriteError as exc:
            if exc.kind in ("conflict", "read_only"):
                raise _Refuse(str(exc)) from None
            op.status = OpStatus.FAILED
            op.message = op.error = clip(f"could not write the intent: {exc}")
            return
        self._in_flight[op.op_id] = (writer, intent)
        stage("intent")
        result: ActionResult | None = None
        if already or t.instance_id is None:
            outcome = "already" if already else "done"
        else:
            try:
                result = await self._provider_call(op, f"lease {t.lease_id}")
            except (_Failed, _Unknown) as exc:
                self._in_flight.pop(op.op_id, None)  # settled below: an interruption adds nothing
                if isinstance(exc, _Failed):
                    message = clip(str(exc))
                    op.status = OpStatus.FAILED
                    record = writer.record_failure
                else:
                    message = clip(
                        f"Failed to {action.value} lease {t.lease_id}: outcome unknown: response lost "
                        f"({exc.first}) and the read back failed ({exc.why})"
                    )
                    op.status = OpStatus.UNKNOWN
                    record = writer.record_unknown
                op.message = op.error = message if op.status is OpStatus.FAILED else unknown_text(op, exc)
                try:
                    snap = await asyncio.to_thread(record, intent, message, payload=payload)
                    op.after = snap.as_dict()
                except WriteError as wexc:
                    what = "failure" if op.status is OpStatus.FAILED else "unknown outcome"
                    op.message = f"{op.message}; and the {what} could not be recorded: {wexc}"
                stage("provider")
                return
            outcome = result.outcome.value
        self._in_flight.pop(op.op_id, None)
        stage("provider")
        op.outcome = outcome
        try:
            snap = await asyncio.to_thread(writer.record_success, intent, outcome=outcome, payload=payload)
            op.after = snap.as_dict()
        except WriteError as exc:
            # The provider did act: stay pending (observation decides), but say the DB lags.
            op.error = clip(f"{action.value} done at the provider but the outcome was not recorded: {exc}")
        op.message = self._done_message(op, result, bound=t.instance_id is not None)
        stage("recorded")

    def _done_message(self, op: Operation, result: ActionResult | None, *, bound: bool) -> str:
        verb = op.action.past_tense
        if not bound:
            return "no instance bound; lease marked destroyed"
        if op.outcome == "already":
            state = "gone" if op.action is Action.DESTROY else op.intended_state
            return (
                f"already {state} at the provider; recorded in sandbox.db"
                if op.target.kind == "lease"
                else (f"already {state}")
            )
        if op.outcome == "accepted":
            return f"{op.action.value} accepted by the provider (in progress)"
        detail = f" ({result.detail})" if result is not None and result.detail else ""
        return f"{verb}{detail}"

    def _relist(self, provider: str) -> None:
        """The provider answered: the collector lists it in full on the next refresh, so the
        action settles within one refresh instead of waiting for the provider's scheduled
        listing (a GET of the instance beside it would only repeat that listing's work)."""
        relist = getattr(self.collector, "relist", None)
        if relist is not None:
            relist(provider)

    async def _provider_call(self, op: Operation, what: str) -> ActionResult:
        """Call the provider. A lost answer (timeout, connection error, 5xx) is settled by one
        read back: the target state -> done; the old state -> _Failed; no answer -> _Unknown."""
        t, action = op.target, op.action
        assert t.instance_id is not None
        try:
            result = await self._call(action, t.provider, t.instance_id)
            self._relist(t.provider)
            return result
        except _Refuse:
            raise
        except Exception as exc:
            first = one(exc)
            if not isinstance(exc, Unavailable | TimeoutError | ConnectionError):
                raise _Failed(f"Failed to {action.value} {what}: {first}") from None
        try:
            inst = await self._get(t.provider, t.instance_id)
        except Exception as exc:
            raise _Unknown(first, one(exc)) from None
        now = inst.state.value if inst is not None else "gone"
        if self._satisfied(action, inst, t.provider):
            detail = f"its response was lost ({first}), a read back shows it {now}"
            state = inst.state if inst is not None else None
            return ActionResult(t.instance_id, action.value, ActionOutcome.DONE, state=state, detail=detail)
        if inst is not None and inst.state in (NormalState.TRANSITIONING, NormalState.UNKNOWN):
            raise _Unknown(first, f"the instance is {inst.raw_state or now}, neither before nor after")
        raise _Failed(f"Failed to {action.value} {what}: {first} (read back: still {now})")

    async def _get(self, provider: str, instance_id: str) -> Instance | None:
        """One GET; None when the provider says the instance is gone."""
        adapter = self.adapter(provider)
        assert adapter is not None
        try:
            inst = await adapter.get_instance(instance_id)
        except NotFound:
            return None
        return None if inst.state is NormalState.GONE else inst

    async def _call(self, action: Action, provider: str, instance_id: str) -> ActionResult:
        adapter = self.adapter(provider)
        assert adapter is not None
        if self.read_only:  # belt and braces: no mutation request may leave a read-only cockpit
            raise _Refuse("read-only mode: actions are disabled")
        if action is Action.PAUSE:
            return await adapter.pause(instance_id)
        if action is Action.RESUME:
            return await adapter.resume(instance_id)
        return await adapter.destroy(instance_id)

    # ------------------------------------------------------------------ orphans

    async def _orphan_checks(self, op: Operation) -> Instance | None:
        t = op.target
        assert t.instance_id is not None
        inst = await self._fresh(op)
        ids = [t.instance_id, *(inst.aliases if inst else ())]
        bound = await self._binding_leases(t.provider, ids)
        if bound:
            raise _Refuse(
                f"{t.instance_key} is now bound to lease {bound[0]} (adopted meanwhile?); "
                "act on the lease instead"
            )
        if t.is_leak:
            await self._leak_checks(op, inst)
        op.before = {
            "provider_state": inst.state.value if inst else "gone",
            "raw_state": inst.raw_state if inst else None,
            "lease_id": t.lease_id,
        } | ({"leak_of_destroyed_lease": True} if t.is_leak else {})
        return inst

    async def _leak_checks(self, op: Operation, inst: Instance | None) -> None:
        """A leaked instance is destroyed only while its lease is still destroyed and the instance
        still claims it (LEON may have revived the lease, or the id may now be someone else's)."""
        t = op.target
        assert t.lease_id is not None
        lease = await self._db_lease(t.lease_id)
        if lease is None or lease.desired_state != "destroyed":
            now = "gone from sandbox.db" if lease is None else f"desired_state now {lease.desired_state}"
            raise _Refuse(f"lease {t.lease_id} changed since you looked ({now}); refresh and retry")
        if inst is not None and inst.claimed_lease_id not in (None, t.lease_id):
            raise _Refuse(
                f"{t.instance_key} now claims lease {inst.claimed_lease_id}, not {t.lease_id}; "
                "refresh and retry"
            )

    async def _orphan_action(self, op: Operation, stage: Callable[[str], None]) -> None:
        t, action = op.target, op.action
        assert t.instance_id is not None
        inst = await self._orphan_checks(op)
        if inst is None and action is not Action.DESTROY:
            raise _Refuse(f"instance {t.instance_key} is gone at the provider; nothing to {action.value}")
        if inst is not None and inst.raw_state == "destroying" and action is Action.DESTROY:
            already = True
        else:
            already = self._satisfied(action, inst, t.provider)
        if op.dry_run:
            op.status = OpStatus.PLANNED
            op.outcome = "already" if already else None
            what = (
                f"leaked instance {t.instance_key} of destroyed lease {t.lease_id}"
                if t.is_leak
                else (f"orphan {t.instance_key}")
            )
            op.message = f"would {action.value} {what}" + (" (already there)" if already else "")
            return
        result: ActionResult | None = None
        if already:
            op.outcome = "already"
        else:
            await self._audit_begin(op)
            try:
                result = await self._provider_call(op, t.instance_key)
            except _Failed as exc:
                op.status = OpStatus.FAILED
                op.message = op.error = clip(str(exc))
                stage("provider")
                return
            except _Unknown as exc:
                op.status = OpStatus.UNKNOWN
                op.message = op.error = unknown_text(op, exc)
                stage("provider")
                return
            op.outcome = result.outcome.value
        stage("provider")
        op.after = {"provider_state": (result.state.value if result and result.state else op.intended_state)}
        op.message = self._done_message(op, result, bound=True)
        if t.is_leak:
            op.message += f" (leaked instance of destroyed lease {t.lease_id}; sandbox.db unchanged)"

    async def _adopt(self, op: Operation, thread_id: str | None, stage: Callable[[str], None]) -> None:
        t = op.target
        assert t.instance_id is not None
        inst = await self._orphan_checks(op)
        if inst is None:
            raise _Refuse(f"instance {t.instance_key} is gone at the provider; nothing to adopt")
        state = leon_state(inst)
        if state is None:
            raise _Refuse(
                f"instance {t.instance_key} is {inst.raw_state}: LEON would see it as detached; "
                "destroy it instead"
            )
        op.adopt_state = state
        if op.dry_run:
            op.status = OpStatus.PLANNED
            where = f" and attach it to thread {thread_id}" if thread_id else ""
            op.message = f"would adopt {t.instance_key} as a new lease ({state}){where}"
            return
        cwd = self._caps(t.provider).workspace_root or DEFAULT_WORKSPACE
        await self._audit_begin(op)
        try:
            rec = await asyncio.to_thread(
                self.writer().adopt, t.provider, t.instance_id, state, aliases=inst.aliases,
                thread_id=thread_id, cwd=cwd,
            )  # fmt: skip
        except WriteError as exc:
            if exc.kind in ("conflict", "read_only"):
                raise _Refuse(str(exc)) from None
            op.status = OpStatus.FAILED
            op.message = op.error = clip(f"could not adopt: {exc}")
            return
        stage("recorded")
        self._relist(t.provider)  # settles on a listing taken after the adopt
        op.new_lease_id = rec.lease_id
        op.target = replace(t, thread_id=thread_id) if thread_id else t
        op.outcome = "done"
        op.after = rec.after.as_dict() | ({"terminal_id": rec.terminal_id} if rec.terminal_id else {})
        op.message = f"adopted as {rec.lease_id} ({state})" + (
            f", attached to thread {thread_id}" if thread_id else ""
        )

    async def _already_adopted(self, op: Operation, thread_id: str | None) -> None:
        """`adopt` of an instance bound to a lease: "already", with that lease (re-read from
        sandbox.db now). Refused when the operator asked for a thread the lease is not on: that
        would be a different binding, not a repeat."""
        t = op.target
        assert t.lease_id is not None and t.instance_id is not None
        lease = await self._db_lease(t.lease_id)
        if lease is None or lease.provider_name != t.provider or lease.current_instance_id != t.instance_id:
            now = "gone" if lease is None else f"now bound to {lease.current_instance_id or 'nothing'}"
            raise _Refuse(f"lease {t.lease_id} changed since you looked ({now}); refresh and retry")
        try:
            async with self._leon().sandbox_reader(self.db_path) as reader:
                threads = await reader.threads_for_lease(t.lease_id)
        except SourceError as exc:
            raise _Refuse(f"cannot re-read sandbox.db: {exc}") from None
        on = f"thread {', '.join(threads)}" if threads else "no thread"
        if thread_id is not None and thread_id not in threads:
            raise _Refuse(
                f"{t.instance_key} is already adopted as lease {t.lease_id} (on {on}), "
                f"not attached to thread {thread_id}; refusing to rebind it"
            )
        op.before = {
            "desired_state": lease.desired_state,
            "observed_state": lease.observed_state,
            "instance_id": lease.current_instance_id,
            "version": lease.version,
            "lease_id": lease.lease_id,
        }
        op.adopt_state = lease.observed_state
        op.outcome = "already"
        if op.dry_run:
            op.status = OpStatus.PLANNED
            op.message = f"would do nothing: {t.instance_key} is already lease {t.lease_id} ({on})"
            return
        # Stays pending: the tracker confirms the binding on the next listing, as for any action.
        op.after = dict(op.before)
        op.message = f"already adopted: {t.instance_key} is lease {t.lease_id} ({on})"

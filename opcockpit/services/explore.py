"""Explore: run a query (the language or read-only SQL) over every dataset the cockpit knows.

Datasets and where their rows come from:
- leases, orphans: the GroundTruth the caller passes (the collector's latest refresh; stale rows
  stay, with their age, and a warning names the failed provider);
- runs: the events.db reader's run summaries, joined with thread -> lease -> provider;
- run_events, commands, sessions, lease_events, provider_events: the rows port.
- events (the cockpit's event ledger), audit, alerts: the rows port too, which reads them from the
  configured ledger, a SQLite file or a team's PostgreSQL (adapters/ledger/explore_ledger.py).

Table-backed datasets evaluate their filter and time window in SQLite where it is exact, and a
query that starts with a count (`| group by f | count`, `| count by f`, `| count`) is counted
there too, so the rows never leave SQLite; the evaluator applies the same filter (one typed
filter, domain.query.filter) to what comes back, so both paths give the same result. With the
platform source on PostgreSQL the rows port reads LEON's datasets there and declines the counts
(`aggregate` -> None): the evaluator filters and counts them (adapters/pg_source_explore.py);
so it does for the ledger datasets with the ledger on PostgreSQL (only the `events` time window
runs there).

Evaluation (domain.query) runs in a worker thread under a time budget, so a TUI stays responsive
and a runaway query stops with a clear message. Every run is recorded in the query history.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from opcockpit.domain.models import GroundTruth, GroundTruthRow, OrphanRow
from opcockpit.domain.query import (
    FACET_TOP,
    Plan,
    QueryError,
    Result,
    compile_query,
    count_pushdown,
    parse,
    run_counted,
    run_plan,
)
from opcockpit.domain.text import one_line
from opcockpit.domain.timeutil import fmt_age, make_parser
from opcockpit.ports.explore import (
    ExploreRowsPort,
    SavedQuery,
    SavedQueryStorePort,
    SqlReadonlyPort,
    SqlResult,
)
from opcockpit.ports.ledger import LedgerError
from opcockpit.ports.leon import EventsReader
from opcockpit.services.explore_runs import run_rows, window_rows
from opcockpit.services.runs import RunReads, signature

__all__ = ["ExploreService", "lease_row", "orphan_row"]

DEFAULT_TIMEOUT_S = 10.0
GROUND_TRUTH_DATASETS = ("leases", "orphans")


def lease_row(r: GroundTruthRow) -> dict[str, Any]:
    return {
        "lease_id": r.lease_id, "provider": r.provider, "thread_id": r.thread_id,
        "threads": " ".join(r.thread_ids), "session_id": r.chat_session_id, "instance_id": r.instance_id,
        "desired": r.desired_state, "observed": r.observed_state, "provider_state": r.provider_state,
        "convergence": str(r.convergence), "reason": r.reason, "last_active": r.last_active,
        "source": r.source, "lease_status": r.lease_status, "version": r.version,
        "needs_refresh": r.needs_refresh, "last_error": r.last_error, "updated": r.updated_at,
        "stale_age": r.stale_age_s,
    }  # fmt: skip


def orphan_row(o: OrphanRow) -> dict[str, Any]:
    return {
        "provider": o.provider, "instance_id": o.instance_id, "name": o.name,
        "provider_state": o.provider_state, "raw_state": o.raw_state,
        "labels": " ".join(f"{k}={v}" for k, v in sorted(o.labels.items())), "created": o.created_at,
        "claimed_lease_id": o.claimed_lease_id, "claim": o.claim, "confirmed": o.confirmed,
    }  # fmt: skip


@dataclass
class ExploreService:
    rows: ExploreRowsPort
    events_db: str | None = None
    events_reader: Callable[[str], EventsReader] | None = None
    sql: SqlReadonlyPort | None = None
    store: Callable[[], SavedQueryStorePort] | None = None  # opened per use (blocking)
    clock: Callable[[], datetime] | None = None
    operator: str = ""
    # The cockpit's runs of events.db kept by seq watermark (services.runs.RunReads): the runs
    # dataset reuses them instead of a GROUP BY over every run_event per query. None: per query.
    run_reads: RunReads | None = None
    _parse: Callable[[object], datetime | None] = field(default_factory=make_parser, repr=False)

    def now(self) -> datetime:
        return self.clock() if self.clock is not None else datetime.now(UTC)

    # ------------------------------------------------------------------ the language
    def plan(self, text: str, params: Mapping[str, str] | None = None) -> Plan:
        """Parse + check (QueryError subclasses carry the column)."""
        return compile_query(parse(text), now=self.now(), params=params)

    async def run(
        self,
        text: str,
        *,
        params: Mapping[str, str] | None = None,
        cap: int | None = None,
        facets: bool = False,
        timeout_s: float = DEFAULT_TIMEOUT_S,
        ground_truth: GroundTruth | None = None,
        record: bool = True,
    ) -> Result:
        """Run `text`. Raises QueryError (bad query, timeout) or SourceError (a source unreadable).
        `record=False`: the caller records the run in the history (`remember`) when it suits it
        (the TUI: after the result is drawn, so the ledger write is not on the way to it)."""
        started = time.monotonic()
        try:
            plan = self.plan(text, params)
            warnings: list[str] = []
            name = plan.dataset.name
            if name in GROUND_TRUTH_DATASETS:
                source: Iterable[dict[str, Any]] = self._ground_truth_rows(name, ground_truth, warnings)
            elif name == "runs":
                source = await self._runs(plan, facets=facets)
            else:
                source = None
            deadline = started + timeout_s
            counted = None
            if source is None:
                counted = await self._counted(plan, cap=cap, facets=facets, deadline=deadline)
            if counted is not None:
                result = counted
            else:
                if source is None:
                    source = self.rows.rows(
                        name, since=plan.since, until=plan.until, where=plan.filter, deadline=deadline
                    )
                result = await asyncio.to_thread(
                    run_plan, plan, source, cap=cap, facets=facets, deadline=deadline
                )
            result.warnings.extend(warnings)
        except Exception as exc:
            if record:
                await self.remember(text, rows=None, error=exc)
            raise
        result.elapsed_s = time.monotonic() - started
        if record:
            await self.remember(text, rows=result.total)
        return result

    async def _counted(self, plan: Plan, *, cap: int | None, facets: bool, deadline: float) -> Result | None:
        """A query starting with a count whose filter the source evaluates exactly: counted in
        the source (the rows never leave SQLite), and so are its facets where the source can."""
        push = count_pushdown(plan)
        if push is None:
            return None
        name = plan.dataset.name
        if facets:  # counted with its facets in one pass in the source (the rows stay there)
            both = getattr(self.rows, "count_with_facets", None)
            if both is None:
                return None
            got = await asyncio.to_thread(
                both, name, since=plan.since, until=plan.until, where=plan.filter, by=push.by,
                fields=plan.dataset.facets, top=FACET_TOP, deadline=deadline,
            )  # fmt: skip
            if got is None:
                return None
            result = run_counted(plan, push, got[0], cap=cap)
            result.facets = got[1]
            return result
        counts = await asyncio.to_thread(
            self.rows.aggregate, name, since=plan.since, until=plan.until,
            where=plan.filter, by=push.by, deadline=deadline,
        )  # fmt: skip
        return None if counts is None else run_counted(plan, push, counts, cap=cap)

    def _ground_truth_rows(
        self, name: str, gt: GroundTruth | None, warnings: list[str]
    ) -> Iterator[dict[str, Any]]:
        if gt is None:
            raise QueryError(f"{name} needs the ground truth (a refresh); none was given")
        for p in gt.providers:
            if p.error:
                warnings.append(
                    f"provider {p.name}: listing failed ({one_line(p.error)}); its rows are stale "
                    f"(last listed {fmt_age(p.age_s)} ago)"
                )
        conv = lease_row if name == "leases" else orphan_row
        return (conv(r) for r in (gt.rows if name == "leases" else gt.orphans))  # type: ignore[arg-type]

    async def _runs(self, plan: Plan, *, facets: bool = False) -> Iterable[dict[str, Any]]:
        """The runs dataset's rows for `plan` (services/explore_runs.py): from the cockpit's
        `run_reads` when it has one, else read for this query alone."""
        if self.events_reader is None or self.events_db is None:
            from opcockpit.ports.errors import SourceError

            raise SourceError("missing", "no events.db configured; pass --events-db or set it in the config")
        threads = await asyncio.to_thread(self.rows.thread_leases)
        reads = self.run_reads
        if reads is not None:
            path, now = self.events_db, self.now()
            sig = signature(path)
            runs = reads.cached(path, sig, now, plan.since)
            if runs is None:
                try:
                    async with self.events_reader(path) as reader:
                        runs = await reads.read(reader, path, sig, now, plan.since)
                except Exception:
                    reads.forget(path)
                    raise
            return window_rows(runs, threads)  # lazy: the rows are built in run_plan's thread
        async with self.events_reader(self.events_db) as reader:
            return await run_rows(reader, threads, plan, facets=facets, parse=self._parse)

    # ------------------------------------------------------------------ SQL mode
    async def run_sql(
        self, sql: str, *, params: Mapping[str, Any] | None = None, limit: int = 1000, timeout_s: float = 5.0
    ) -> SqlResult:
        """One read-only statement (SqlRefused for a write, a second statement or a timeout)."""
        if self.sql is None:
            raise QueryError("the SQL mode needs sandbox.db or a PostgreSQL source; pass --db or set it")
        try:
            res = await asyncio.to_thread(
                self.sql.execute, sql, dict(params or {}), limit=limit, timeout_s=timeout_s
            )
        except Exception as exc:
            await self._remember(sql, sql=True, rows=None, error=one_line(str(exc)))
            raise
        await self._remember(sql, sql=True, rows=len(res.rows), error=None)
        return res

    # ------------------------------------------------------------------ saved queries + history
    def _with_store(self, fn: Callable[[SavedQueryStorePort], Any]) -> Any:
        if self.store is None:
            raise QueryError("no ledger configured for saved queries")
        st = self.store()
        try:
            return fn(st)
        finally:
            st.close()

    async def remember(
        self, text: str, *, rows: int | None, error: BaseException | None = None, sql: bool = False
    ) -> None:
        """Record one run of `text` in the query history (`rows` it returned, or the `error`)."""
        await self._remember(text, sql=sql, rows=rows, error=None if error is None else one_line(str(error)))

    async def _remember(self, text: str, *, sql: bool, rows: int | None, error: str | None) -> None:
        if self.store is None:
            return
        # history is a convenience: an unusable ledger never fails the query itself
        with contextlib.suppress(LedgerError):
            await asyncio.to_thread(
                self._with_store,
                lambda s: s.record_history(text, sql=sql, rows=rows, error=error, at=self.now()),
            )

    def saved(self, name: str) -> SavedQuery | None:
        return self._with_store(lambda s: s.get(name))

    def saved_all(self) -> list[SavedQuery]:
        return self._with_store(lambda s: s.list())

    def save(self, name: str, text: str, *, description: str = "", sql: bool = False) -> SavedQuery:
        """Check the query parses (language mode), then store it with its parameters."""
        params: tuple[str, ...] = ()
        if not sql:
            params = tuple(parse(text).params())
        q = SavedQuery(name, text, description, sql, params, self.operator)
        old = self.saved(name)
        if old is not None:
            q.created_at = old.created_at
        return self._with_store(lambda s: s.save(q))

    def remove(self, name: str) -> bool:
        return self._with_store(lambda s: s.remove(name))

    def history(self, limit: int = 50) -> list[dict[str, Any]]:
        return self._with_store(lambda s: s.history(limit))

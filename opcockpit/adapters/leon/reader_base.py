"""LEON's read contract written once: the reconcile input (and, through `LeonDetailQueries`, the
detail queries of the TUI) over either dialect (`dialect.SQLITE` for sandbox.db,
`dialect.POSTGRES` for Mycel's tables).

A concrete reader supplies the connection: `open`/`close` and `_snapshot(build)`, which runs the
`Q`s that `build(schema)` returns in one read-only snapshot and returns the rows as SQLite would
have returned them. Everything else (which columns, which order, the row builders, the vetting
of bad rows, the Mycel fallbacks) lives here, so both sources answer alike.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from types import TracebackType
from typing import Any, NamedTuple, Self

from opcockpit.adapters.leon.dialect import Q
from opcockpit.adapters.leon.reader_details import LeonDetailQueries
from opcockpit.adapters.leon.sandbox_rows import (
    _LEASE_COLS,
    _OFFLOOP_ROWS,
    _SESSION_COLS,
    _SNAPSHOT_COLS,
    _TERMINAL_COLS,
    _leases,
    _Schema,
    _sessions,
    _snapshots,
    _terminals,
    _vetted,
)
from opcockpit.domain.gcpause import gc_paused
from opcockpit.domain.models import DbState

__all__ = ["EarlyRecords", "LeonReaderBase"]


class EarlyRecords(NamedTuple):
    """One table's records made as its rows arrived (see `LeonReaderBase._state`'s `built`)."""

    rows: list[tuple]
    records: Any


class LeonReaderBase(LeonDetailQueries):
    """The shared half of `SandboxDbReader` and `PgSandboxReader` (see the module docstring)."""

    # The reconcile input's row builders (leases, terminals, sessions, resource snapshots): they
    # intern repeated text (issue 10's memory budget); a one-shot read has its own
    # (sandbox_rows_once.ONE_SHOT_BUILDERS: the same records, not interned).
    _builders: tuple[Callable[..., Any], ...] = (_leases, _terminals, _sessions, _snapshots)

    # ---------------------------------------------------------------- supplied by the reader

    async def open(self) -> Self:
        raise NotImplementedError

    async def close(self) -> None:
        raise NotImplementedError

    def _missing(self, schema: _Schema) -> tuple[str, ...]:
        return schema.missing_tables

    # ---------------------------------------------------------------- lifecycle and facts

    async def __aenter__(self) -> Self:
        return await self.open()

    async def __aexit__(
        self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    @property
    def schema_variant(self) -> str | None:
        return self._schema.variant if self._schema else None

    @property
    def missing_tables(self) -> tuple[str, ...]:
        return self._missing(self._schema) if self._schema else ()

    @property
    def lease_history_source(self) -> str:
        """Which table `lease_events()` reads: "lease_events", else Mycel's "provider_events"."""
        return "provider_events" if self._history_table(self._schema) == "provider_events" else "lease_events"

    async def _convert(self, fn: Callable[[], Any], nrows: int) -> Any:
        if nrows > _OFFLOOP_ROWS:  # bigger results convert in a worker: the UI loop stays responsive
            return await asyncio.to_thread(fn)
        return fn()

    # ---------------------------------------------------------------- reconcile input

    def _state_queries(self, s: _Schema) -> list[Q]:
        """The four reconcile-input queries (leases, terminals, sessions, resource snapshots)."""
        qs = [self._sel(s, "sandbox_leases", _LEASE_COLS), self._sel(s, "abstract_terminals", _TERMINAL_COLS)]
        for t, cols in (("chat_sessions", _SESSION_COLS), ("lease_resource_snapshots", _SNAPSHOT_COLS)):
            qs.append(self._sel(s, t, cols) if s.has(t) else Q(self.dialect.nothing, (), t, cols))
        return qs

    async def read_state(self, *, now: datetime | None = None) -> DbState:
        """Leases, terminals, chat sessions and resource snapshots, from one consistent snapshot."""
        # Fetching and converting ~50k rows allocates as many tuples and records: see gcpause.
        with gc_paused():
            schema, (lrows, trows, srows, rrows) = await self._snapshot(self._state_queries)
            return await self._state(schema, lrows, trows, srows, rrows, now)

    async def _state(
        self,
        schema: _Schema,
        lrows: list[tuple],
        trows: list[tuple],
        srows: list[tuple],
        rrows: list[tuple],
        now: datetime | None,
        known: Sequence[Sequence[Any] | None] = (None, None, None),
        built: Sequence[EarlyRecords | None] = (None, None, None, None),
    ) -> DbState:
        """`known`: per table (leases, terminals, sessions), the records of rows the caller knows
        unchanged (aligned with the rows; None where a row must be built). The change tracker
        keeps them by rowid, so unchanged rows cost no record build and no timestamp parse.
        `built`: per table (and resource snapshots), what `self._builders` already made of these
        very rows (`EarlyRecords`: used only when its rows are the rows passed here)."""
        ap = self._apath
        p = self._parse
        leases_of, terminals_of, sessions_of, snapshots_of = self._builders

        def early(i: int, rows: list[tuple]) -> Any:
            made = built[i]
            return made.records if made is not None and made.rows is rows else None

        read_at = now if now is not None else datetime.now(UTC)

        def records(
            rows: list[tuple], build: Callable[..., list[Any]], prev: Sequence[Any] | None
        ) -> Sequence[Any]:
            if prev is None:
                return build(rows, p)  # as built: a one-shot builder's list carries its columns
            recs = list(prev)
            misses = [i for i, rec in enumerate(recs) if rec is None]
            if misses:
                for i, rec in zip(misses, build([rows[i] for i in misses], p), strict=True):
                    recs[i] = rec
            return tuple(recs)

        def convert() -> DbState:
            leases, terminals, sessions, lease_problems, problems = _vetted(
                schema,
                p,
                (lrows, early(0, lrows) or records(lrows, leases_of, known[0])),
                (trows, early(1, trows) or records(trows, terminals_of, known[1])),
                (srows, early(2, srows) or records(srows, sessions_of, known[2])),
            )
            return DbState(
                path=ap,
                schema_variant=schema.variant,
                read_at=read_at,
                leases=leases,
                terminals=terminals,
                chat_sessions=sessions,
                resource_snapshots=early(3, rrows) or snapshots_of(rrows, p),
                missing_tables=self._missing(schema),
                lease_problems=lease_problems,
                problems=problems,
            )

        return await self._convert(convert, len(lrows) + len(trows) + len(srows))  # type: ignore[no-any-return]

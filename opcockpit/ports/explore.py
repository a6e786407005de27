"""What the explore service needs of the sources: dataset rows, the read-only SQL mode and the
saved-query store. Implementations: `adapters.leon.explore_rows`, `adapters.leon.sql_readonly`,
`adapters.ledger.queries`; `wiring.build_explore` passes them in.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:  # annotations only: importing the query package would load lark
    from opcockpit.domain.query.filter import Filter

__all__ = [
    "ExploreRowsPort",
    "SavedQuery",
    "SavedQueryStorePort",
    "SqlReadonlyPort",
    "SqlRefused",
    "SqlResult",
]


class ExploreRowsPort(Protocol):
    """Rows of the table-backed datasets as dicts of typed values (blocking; raises SourceError;
    a missing ledger yields no audit/alert rows). `since`/`until` are a pre-filter the adapter may
    apply loosely: the evaluator applies the exact bounds."""

    def rows(
        self,
        dataset: str,
        *,
        since: datetime | None,
        until: datetime | None,
        where: Filter | None = None,
        deadline: float | None = None,
    ) -> Iterable[dict[str, Any]]:
        """`where` (the typed filter) is a hint: the adapter may apply the parts it can evaluate
        exactly; the evaluator still applies all of it. `deadline` (time.monotonic()) stops a
        slow source with QueryTimeout."""
        ...

    def aggregate(
        self,
        dataset: str,
        *,
        since: datetime | None,
        until: datetime | None,
        where: Filter | None,
        by: tuple[str, ...],
        deadline: float | None = None,
    ) -> list[tuple[tuple[Any, ...], int]] | None:
        """(values of `by`, count) of the rows matching `where` exactly, or None when the source
        cannot compute it exactly (the evaluator counts instead)."""
        ...

    def thread_leases(self) -> Mapping[str, tuple[str, str]]:
        """thread_id -> (lease_id, provider) of its newest terminal."""
        ...


class SqlRefused(Exception):
    """The SQL mode refused a statement before running it (a write, two statements, ...) or
    stopped it (timeout). One line; nothing was changed."""


@dataclass(slots=True)
class SqlResult:
    columns: tuple[str, ...]
    rows: list[tuple[Any, ...]]
    capped: bool  # more rows existed than the limit
    limit: int


class SqlReadonlyPort(Protocol):
    def execute(
        self, sql: str, params: Mapping[str, Any] | Sequence[Any] = (), *, limit: int, timeout_s: float
    ) -> SqlResult: ...


@dataclass(slots=True)
class SavedQuery:
    name: str
    query: str
    description: str = ""
    sql: bool = False
    params: tuple[str, ...] = ()
    owner: str = ""
    created_at: datetime | None = None
    updated_at: datetime | None = None
    extra: dict[str, Any] = field(default_factory=dict)


class SavedQueryStorePort(Protocol):
    def list(self) -> list[SavedQuery]: ...

    def get(self, name: str) -> SavedQuery | None: ...

    def save(self, q: SavedQuery) -> SavedQuery: ...

    def remove(self, name: str) -> bool: ...

    def record_history(
        self, query: str, *, sql: bool, rows: int | None, error: str | None, at: datetime
    ) -> None: ...

    def history(self, limit: int = 50) -> list[dict[str, Any]]: ...

    def close(self) -> None: ...

"""FleetCollector: one refresh = read sandbox.db + list every provider concurrently + reconcile.

Never lies about the fleet: a provider whose listing fails (error, timeout, missing adapter or key)
is reported with `ok=False` and the *last good* instances and their `listed_at`, so reconcile marks
its rows stale with an age instead of gone, and produces no orphans for it.

Single-flight: while a refresh runs, further `refresh()` calls join it (they await the same task and
get the same GroundTruth) instead of stacking a second DB read and provider round. Callers that
prefer to drop a tick (the TUI) check `refreshing` first.

Ports in, no adapters: `wiring` passes the LEON readers (`leon`) and the provider factory
(`build_adapter`, the registry's). No Textual.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import time
from collections.abc import Callable, Collection, Mapping
from dataclasses import replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from opcockpit.domain.models import DbState, GroundTruth, ProviderListing, problems_provider_unknown
from opcockpit.domain.reconcile import reconcile
from opcockpit.domain.secrets import scrub
from opcockpit.ports.leon import LeonAccess
from opcockpit.ports.provider import ProviderAdapter, ProviderError

if TYPE_CHECKING:
    from opcockpit.settings.config import CockpitConfig, ProviderConfig

AdapterFactory = Callable[["ProviderConfig"], ProviderAdapter]

_ERROR_CHARS = 240


def _utcnow() -> datetime:
    return datetime.now(UTC)


def one_line_error(exc: BaseException, *, timeout_s: float | None = None) -> str:
    """A one-line, secret-free description of a listing failure."""
    if isinstance(exc, TimeoutError | asyncio.TimeoutError):
        return f"listing timed out after {timeout_s:g}s" if timeout_s else "listing timed out"
    text = str(exc).strip() or type(exc).__name__
    text = " ".join(text.split())  # newlines / tracebacks of upstream bodies -> one line
    if not isinstance(exc, ProviderError):
        text = f"{type(exc).__name__}: {text}"
    text = scrub(text)
    return text if len(text) <= _ERROR_CHARS else text[: _ERROR_CHARS - 1] + "…"


class FleetCollector:
    """Owns the adapters and the last good listing per provider; produces GroundTruth."""

    def __init__(
        self,
        config: CockpitConfig,
        *,
        adapters: Mapping[str, ProviderAdapter] | None = None,
        clock: Callable[[], datetime] | None = None,
        providers: Collection[str] | None = None,
        leon: LeonAccess | None = None,
        build_adapter: AdapterFactory | None = None,
    ) -> None:
        self.config = config
        self.leon = leon
        self.build_adapter = build_adapter
        self._clock = clock or _utcnow
        # Injected adapters (tests, demo) win over the registry for their provider names.
        self.adapters: dict[str, ProviderAdapter] = dict(adapters or {})
        self._only = set(providers) if providers else None
        self._build_errors: dict[str, str] = {}
        self._last_good: dict[str, ProviderListing] = {}
        self._confirmed: dict[str, frozenset[str]] = {}
        self.listings: dict[str, ProviderListing] = {}
        self.last_ground_truth: GroundTruth | None = None
        self.last_db_state: DbState | None = None
        self._inflight: asyncio.Task[GroundTruth] | None = None
        self.refresh_count = 0

    # ------------------------------------------------------------------ public

    @property
    def refreshing(self) -> bool:
        return self._inflight is not None and not self._inflight.done()

    async def refresh(self) -> GroundTruth:
        """Read + list + reconcile. Joins a refresh already in flight instead of starting another.

        Raises the sources' SourceError when sandbox.db cannot be read (listings still update).
        """
        if self._inflight is None or self._inflight.done():
            self._inflight = asyncio.get_running_loop().create_task(self._refresh())
        # shield: a cancelled joiner must not cancel the refresh others are waiting on
        return await asyncio.shield(self._inflight)

    async def aclose(self) -> None:
        if self._inflight is not None and not self._inflight.done():
            self._inflight.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._inflight
        for adapter in list(self.adapters.values()):
            # closing is best effort; a dead connection pool must not block exit
            with contextlib.suppress(Exception):
                await adapter.aclose()

    def configured(self) -> list[ProviderConfig]:
        provs = [p for p in self.config.providers.values() if p.enabled]
        if self._only is not None:
            provs = [p for p in provs if p.name in self._only]
        return provs

    # ------------------------------------------------------------------ internals

    async def _refresh(self) -> GroundTruth:
        db_task = asyncio.ensure_future(self._read_db())
        configured = self.configured()
        try:
            results = await asyncio.gather(*(self._list_one(p) for p in configured))
        except BaseException:
            db_task.cancel()
            raise
        listings: dict[str, ProviderListing] = {lst.provider: lst for lst in results}
        db = await db_task  # SourceError propagates after listings have been recorded
        self.last_db_state = db
        disabled = {p.name for p in self.config.providers.values() if not p.enabled}
        # A lease whose provider_name is unusable (NULL/BLOB) names no provider: reconcile shows
        # it as `unknown` without inventing a provider for it.
        odd = db.lease_problems
        named = {
            lease.provider_name
            for lease in db.leases
            if not (odd and problems_provider_unknown(odd.get(lease.lease_id, ())))
        }
        for name in sorted(named):
            if name in listings:
                continue
            if self._only is not None and name not in self._only:
                continue
            reason = "is disabled in the config" if name in disabled else "is not configured"
            listings[name] = ProviderListing(
                provider=name, kind="unknown", ok=False, error=f"provider {name!r} {reason}"
            )
        await self._confirm_orphans(db, listings)
        self.listings = listings
        gt = reconcile(db, list(listings.values()), self._clock())
        self.last_ground_truth = gt
        self.refresh_count += 1
        return gt

    async def _confirm_orphans(self, db: DbState, listings: dict[str, ProviderListing]) -> None:
        """Eventually consistent lists (Daytona) may show instances that are already gone: GET each
        candidate orphan once before it may be shown as actionable. Ids confirmed earlier stay
        confirmed while they remain candidates, so a steady fleet costs no extra requests."""
        if not any(listing.ok and listing.eventually_consistent for listing in listings.values()):
            return  # nothing to confirm: skip indexing every lease's instance id
        bound: dict[str, set[str]] = {}
        for lease in db.leases:
            if lease.current_instance_id:
                bound.setdefault(lease.provider_name, set()).add(lease.current_instance_id)
        for name, listing in list(listings.items()):
            adapter = self.adapters.get(name)
            confirm = getattr(adapter, "confirm_orphans", None)
            if not (listing.ok and listing.eventually_consistent and confirm is not None):
                continue
            ids = bound.get(name, set())
            candidates = {
                i.instance_id
                for i in listing.instances
                if i.instance_id not in ids and not ids.intersection(i.aliases) and i.state != "gone"
            }
            known = self._confirmed.get(name, frozenset()) & candidates
            todo = candidates - known
            fresh: frozenset[str] = frozenset()
            if todo:
                try:
                    fresh = await asyncio.wait_for(confirm(sorted(todo)), self.config.list_timeout_s)
                except asyncio.CancelledError:
                    raise
                except Exception:
                    fresh = frozenset()  # unconfirmed is the safe side: shown, not actionable
            confirmed = frozenset(known | fresh)
            self._confirmed[name] = confirmed
            listings[name] = replace(listing, confirmed_orphans=confirmed)

    async def _read_db(self) -> DbState:
        if self.leon is None:
            raise RuntimeError("FleetCollector needs LEON readers: build it with opcockpit.wiring")
        result: Any = self.leon.read_db_state(str(self.config.sources.sandbox_db))
        if inspect.isawaitable(result):
            result = await result
        return result

    def _adapter(self, cfg: ProviderConfig) -> ProviderAdapter:
        adapter = self.adapters.get(cfg.name)
        if adapter is None:
            if self.build_adapter is None:
                raise RuntimeError(f"no adapter for provider {cfg.name!r} (no adapter factory given)")
            adapter = self.build_adapter(cfg)  # raises AuthFailed / AdapterUnavailable
            self.adapters[cfg.name] = adapter
        return adapter

    async def _list_one(self, cfg: ProviderConfig) -> ProviderListing:
        name, kind = cfg.name, cfg.kind
        timeout = self.config.list_timeout_s
        started = time.perf_counter()
        before = 0
        eventual = False
        try:
            adapter = self._adapter(cfg)
            caps = getattr(adapter, "capabilities", None)
            eventual = bool(getattr(caps, "eventually_consistent_list", False))
            if caps is not None and not caps.has_api:
                return ProviderListing(
                    provider=name, kind=kind, ok=True, has_api=False, listed_at=self._clock()
                )
            before = _requests(adapter)
            instances = await asyncio.wait_for(adapter.list_instances(), timeout)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            last = self._last_good.get(name)
            listing = ProviderListing(
                provider=name,
                kind=kind,
                ok=False,
                instances=last.instances if last else (),
                listed_at=last.listed_at if last else None,
                error=one_line_error(exc, timeout_s=timeout),
                eventually_consistent=eventual,
                requests=_requests(self.adapters.get(name)) - before,
                duration_s=time.perf_counter() - started,
            )
            return listing
        listing = ProviderListing(
            provider=name,
            kind=kind,
            ok=True,
            instances=tuple(instances),
            listed_at=self._clock(),
            eventually_consistent=eventual,
            requests=_requests(adapter) - before,
            duration_s=time.perf_counter() - started,
        )
        self._last_good[name] = listing
        return listing


def _requests(adapter: Any) -> int:
    try:
        return int(adapter.request_count) if adapter is not None else 0
    except Exception:
        return 0

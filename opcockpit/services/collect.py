"""FleetCollector: one refresh = read sandbox.db + list every provider concurrently + reconcile.

Never lies about the fleet: a provider whose listing fails (error, timeout, missing adapter or key)
is reported with `ok=False` and the *last good* instances and their `listed_at`, so reconcile marks
its rows stale with an age instead of gone, and produces no orphans for it.

Single-flight: while a refresh runs, further `refresh()` calls join it (they await the same task and
get the same GroundTruth) instead of stacking a second DB read and provider round. Callers that
prefer to drop a tick (the TUI) check `refreshing` first.

Cheap while little changes (issue 10): the first refresh of a one-shot collector is the full path
(read sandbox.db, reconcile; `snapshot` stays byte-identical). A paced (live) collector, and any
collector from its second refresh on, reads sandbox.db through the change-detecting tracker
(`leon.db_tracker`: nothing committed -> no query) and reconciles incrementally
(`IncrementalReconciler`, equal to a full reconcile of the same inputs). With `paced=True` (the
TUI) each provider is listed in full only every `list_interval_s` (config, else the adapter's
Capabilities); in between its last listing is reused, and `look(provider, ids)` (provider events,
completed actions) GETs just those instances into it.

A paced full listing runs as its own task, one per provider (never two at once): the refresh
waits for it at most `listing_grace_s` and otherwise goes on with the provider's current listing;
a later refresh takes the result once it has landed. At 50k leases a listing can take longer
than a refresh interval (10k sandboxes, 100 pages, on a loaded host): it no longer holds every
refresh (and so sandbox.db changes) up behind it. The next listing is due `list_interval_s`
after the previous one *ended*, so a listing slower than its interval cannot pile up.

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
from operator import is_
from typing import TYPE_CHECKING, Any

from opcockpit.domain.models import (
    DbState,
    GroundTruth,
    Instance,
    ProviderListing,
    ProviderStatus,
    problems_provider_unknown,
)
from opcockpit.domain.reconcile import reconcile
from opcockpit.domain.reconcile_inc import IncrementalReconciler
from opcockpit.domain.secrets import scrub
from opcockpit.ports.leon import LeonAccess
from opcockpit.ports.provider import NotFound, ProviderAdapter, ProviderError

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
        paced: bool = False,
        monotonic: Callable[[], float] = time.monotonic,
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
        # Pacing: list each provider in full only every list_interval_s (the TUI sets it).
        self.paced = paced
        self._monotonic = monotonic
        self._listed_mono: dict[str, float] = {}
        self._relist: set[str] = set()
        # Paced full listings in flight, one per provider; a refresh waits this long for one.
        self._listing_tasks: dict[str, asyncio.Task[ProviderListing]] = {}
        self.listing_grace_s = 2.0
        self.looks = 0  # targeted GETs made by look()
        self._looks_at_refresh = 0  # `looks` when the last refresh began (settled())
        self._tracker: Any = None
        self._incremental = IncrementalReconciler()
        self._named: tuple[tuple[Any, Any], set[str]] | None = None  # (leases, problems) -> names
        self._bound: tuple[Any, dict[str, set[str]]] | None = None  # leases -> bound ids by provider
        # provider -> (instances, leases, candidates, listing, confirmed listing) of the last confirm
        self._confirm_memo: dict[str, tuple[Any, Any, set[str], ProviderListing, ProviderListing]] = {}

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

    def settled(self) -> bool:
        """Sure that a refresh now would return the last picture again, only at a later time:
        sandbox.db unchanged by stat() alone (the tracker's `unchanged`), no provider stale (its
        rows' ages follow the clock), none due for a listing, listing or asked to, no look()
        since the picture. The TUI then skips the tick's refresh (issue 10). False when unsure."""
        unchanged = getattr(self._tracker, "unchanged", None)
        if self.last_ground_truth is None or not self.paced or unchanged is None or self.refreshing:
            return False
        if self._relist or self._listing_tasks or self.looks != self._looks_at_refresh:
            return False
        for cfg in self.configured():
            listing = self.listings.get(cfg.name)
            if listing is None:
                return False
            caps = getattr(self.adapters.get(cfg.name), "capabilities", None)
            if listing.has_api and (caps is None or self._paced_listing(cfg, caps) is None):
                return False  # a listing is due
        if any(listing.status is ProviderStatus.STALE for listing in self.listings.values()):
            return False
        return bool(unchanged())

    def resync(self) -> None:
        """Next refresh re-reads sandbox.db and lists every provider in full, judging everything."""
        if self._tracker is not None:
            self._tracker.invalidate("asked")
        self._incremental.reset()
        self._relist.update(p.name for p in self.configured())

    def relist(self, provider: str) -> None:
        """List `provider` in full on the next refresh (an action there settles on a listing
        taken after it: within one refresh, not one `list_interval_s`)."""
        self._relist.add(provider)

    async def look(self, provider: str, instance_ids: Collection[str]) -> int:
        """GET the given instances of `provider` and put them into its last good listing (a
        provider event or a finished action said they changed), so the next refresh shows them
        without a full listing. NotFound removes the instance. Returns how many were looked at.

        Only a provider whose last listing succeeded is updated (a failed listing keeps its last
        good picture and age untouched); a failed GET asks for a full listing instead."""
        last = self._last_good.get(provider)
        adapter = self.adapters.get(provider)
        if last is None or adapter is None or not last.ok or not instance_ids:
            return 0
        fresh: dict[str, Any] = {}
        for iid in dict.fromkeys(instance_ids):
            self.looks += 1
            try:
                fresh[iid] = await asyncio.wait_for(adapter.get_instance(iid), self.config.list_timeout_s)
            except asyncio.CancelledError:
                raise
            except NotFound:
                fresh[iid] = None
            except Exception:
                self._relist.add(provider)  # unsure: the next refresh lists it in full
        if not fresh:
            return 0
        current = self._last_good.get(provider)
        if current is not last:  # a full listing landed meanwhile: it is newer than our GETs
            return len(fresh)
        kept = []
        for inst in last.instances:
            hit = next((k for k in (inst.instance_id, *inst.aliases) if k in fresh), None)
            if hit is None:
                kept.append(inst)
            elif fresh[hit] is not None:
                kept.append(fresh.pop(hit))
            else:
                fresh.pop(hit)
        kept.extend(i for i in fresh.values() if i is not None)
        updated = replace(last, instances=tuple(kept))
        self._last_good[provider] = updated
        if self.listings.get(provider) is last:
            self.listings[provider] = updated
        return len(instance_ids)

    async def aclose(self) -> None:
        if self._inflight is not None and not self._inflight.done():
            self._inflight.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._inflight
        tasks, self._listing_tasks = list(self._listing_tasks.values()), {}
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        tracker, self._tracker = self._tracker, None
        if tracker is not None:
            with contextlib.suppress(Exception):
                await tracker.aclose()
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
        self._looks_at_refresh = self.looks
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
        named = self._providers_named(db)
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
        now = self._clock()
        if self._tracker is None:
            gt = reconcile(db, list(listings.values()), now)  # the one-shot path (snapshot)
        else:
            gt = self._incremental.step(db, listings, now)
        self.last_ground_truth = gt
        self.refresh_count += 1
        return gt

    def _providers_named(self, db: DbState) -> set[str]:
        """Providers the leases name usably; recounted only when the leases or their problems
        changed (a pass over every lease each refresh, for a set that rarely moves)."""
        key = (db.leases, db.lease_problems)
        if self._named is not None and self._named[0][0] is key[0] and self._named[0][1] is key[1]:
            return self._named[1]
        odd = db.lease_problems
        named = {
            lease.provider_name
            for lease in db.leases
            if not (odd and problems_provider_unknown(odd.get(lease.lease_id, ())))
        }
        self._named = (key, named)
        return named

    async def _confirm_orphans(self, db: DbState, listings: dict[str, ProviderListing]) -> None:
        """Eventually consistent lists (Daytona) may show instances that are already gone: GET each
        candidate orphan once before it may be shown as actionable. Ids confirmed earlier stay
        confirmed while they remain candidates, so a steady fleet costs no extra requests."""
        eventual = {
            name for name, listing in listings.items() if listing.ok and listing.eventually_consistent
        }
        if not eventual:
            return  # nothing to confirm: skip indexing every lease's instance id
        if self._bound is None or self._bound[0] is not db.leases or not eventual <= self._bound[1].keys():
            # Only when the leases changed, and only the providers confirmed: a set of every other
            # provider's bound ids too was ~0.4 MB kept at 10k leases for nothing (issue 10, RSS).
            by_provider: dict[str, set[str]] = {name: set() for name in eventual}
            for lease in db.leases:
                ids = by_provider.get(lease.provider_name)
                if ids is not None and lease.current_instance_id:
                    ids.add(lease.current_instance_id)
            self._bound = (db.leases, by_provider)
        bound = self._bound[1]
        for name, listing in list(listings.items()):
            adapter = self.adapters.get(name)
            confirm = getattr(adapter, "confirm_orphans", None)
            if not (listing.ok and listing.eventually_consistent and confirm is not None):
                continue
            memo = self._confirm_memo.get(name)
            if memo is not None and memo[0] is listing.instances and memo[1] is self._bound[0]:
                candidates = memo[2]  # the same instances and leases: the same candidates
            else:
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
            if memo is not None and memo[3] is listing and memo[4].confirmed_orphans == confirmed:
                # The listing the last refresh confirmed, unchanged: the same object, so the
                # incremental step skips the provider (a new one re-diffed it every tick).
                listings[name] = memo[4]
            else:
                listings[name] = replace(listing, confirmed_orphans=confirmed)
            self._confirm_memo[name] = (
                listing.instances,
                self._bound[0],
                candidates,
                listing,
                listings[name],
            )

    async def _read_db(self) -> DbState:
        if self.leon is None:
            raise RuntimeError("FleetCollector needs LEON readers: build it with opcockpit.wiring")
        path = str(self.config.sources.sandbox_db)
        live = self.paced or self.refresh_count > 0
        if self._tracker is None and live and self.leon.db_tracker is not None:
            # A long-lived, change-detecting reader: from the first refresh of a live (paced)
            # collector, else from the second. A one-shot first read in a live cockpit built a
            # second set of records at the tracker's first read while the first still lived: at
            # 10k leases ~20 MB of pymalloc arenas the freed first set then pinned (issue 10, RSS).
            resync_s = float(getattr(self.config.sources, "resync_s", 300.0))
            self._tracker = self.leon.db_tracker(path, resync_s=resync_s)
        if self._tracker is not None:
            return await self._tracker.read_state(now=self._clock())  # type: ignore[no-any-return]
        result: Any = self.leon.read_db_state(path)
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
        name = cfg.name
        running = self._listing_tasks.get(name)
        if running is not None and name in self._relist:
            # An action wants a listing taken after it: the one in flight may predate it.
            del self._listing_tasks[name]
            running.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await running
            running = None
        if running is not None:
            return await self._landed_or(name, running, self._current(name))
        if not self.paced or name in self._relist or name not in self.listings:
            return await self._full_listing(cfg)  # one-shot, the first listing, or an action's
        try:
            caps = getattr(self._adapter(cfg), "capabilities", None)
        except Exception:
            return await self._full_listing(cfg)  # reports the build error as a failed listing
        if caps is not None and not caps.has_api:
            return await self._full_listing(cfg)  # nothing to list: no task for it
        paced = self._paced_listing(cfg, caps)
        if paced is not None:
            return paced
        task = asyncio.get_running_loop().create_task(
            self._full_listing(cfg, background=True), name=f"opcockpit-list-{name}"
        )
        self._listing_tasks[name] = task
        return await self._landed_or(name, task, self._current(name))

    def _current(self, name: str) -> ProviderListing:
        """The provider's listing as the last refresh had it, with look()'s updates."""
        prev = self.listings[name]
        return self._last_good.get(name, prev) if prev.ok else prev

    async def _landed_or(
        self, name: str, task: asyncio.Task[ProviderListing], current: ProviderListing
    ) -> ProviderListing:
        """The background listing's result if it lands within `listing_grace_s`, else `current`."""
        done, _ = await asyncio.wait({task}, timeout=self.listing_grace_s)
        if not done:
            return current
        self._listing_tasks.pop(name, None)
        return task.result()

    async def _full_listing(self, cfg: ProviderConfig, *, background: bool = False) -> ProviderListing:
        """List `cfg` in full now. `background`: a paced listing's task, started before any
        relist() that may come while it runs, so it does not answer that request."""
        name, kind = cfg.name, cfg.kind
        timeout = self.config.list_timeout_s
        started = time.perf_counter()
        before = 0
        eventual = False
        facts: dict[str, Any] = {}
        try:
            adapter = self._adapter(cfg)
            caps = getattr(adapter, "capabilities", None)
            eventual = bool(getattr(caps, "eventually_consistent_list", False))
            facts = _kind_facts(caps)
            if caps is not None and not caps.has_api:
                prev = self.listings.get(name)
                if prev is not None and not prev.has_api and prev.ok:
                    return prev  # nothing to list; the same object keeps the incremental step cheap
                return ProviderListing(
                    provider=name, kind=kind, ok=True, has_api=False, listed_at=self._clock(), **facts
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
                **facts,
            )
            self._listed_mono[name] = self._monotonic()  # a failed listing waits its interval too
            return listing
        listing = ProviderListing(
            provider=name,
            kind=kind,
            ok=True,
            instances=_same_or_new(self._last_good.get(name), instances),
            listed_at=self._clock(),
            eventually_consistent=eventual,
            requests=_requests(adapter) - before,
            duration_s=time.perf_counter() - started,
            **facts,
        )
        self._last_good[name] = listing
        self._listed_mono[name] = self._monotonic()
        if not background:
            self._relist.discard(name)
        return listing

    def _paced_listing(self, cfg: ProviderConfig, caps: Any) -> ProviderListing | None:
        """The provider's current listing when pacing says it is not due for a full one yet."""
        if not self.paced or cfg.name in self._relist:
            return None
        prev = self.listings.get(cfg.name)
        when = self._listed_mono.get(cfg.name)
        if prev is None or when is None:
            return None
        if prev.ok:
            prev = self._last_good.get(cfg.name, prev)  # with look()'s updates
        interval = getattr(cfg, "list_interval_s", None) or float(getattr(caps, "list_interval_s", 15.0))
        if self._monotonic() - when >= interval:
            return None
        return prev


def _same_or_new(last: ProviderListing | None, instances: list[Instance]) -> tuple[Instance, ...]:
    """The last good listing's tuple when every listed item is the very object it holds (the
    adapters hand back unchanged Instances): the incremental reconcile and the orphan
    confirmation then know the provider unchanged by identity alone (issue 10)."""
    kept = last.instances if last is not None else ()
    return kept if len(kept) == len(instances) and all(map(is_, kept, instances)) else tuple(instances)


def _kind_facts(caps: Any) -> dict[str, Any]:
    """The adapter's kind facts reconcile needs, copied onto every listing of it (ok or failed)."""
    if caps is None:
        return {}
    return {"pause_is_stop": caps.pause_is_stop, "paused_hint": caps.paused_hint}


def _requests(adapter: Any) -> int:
    try:
        return int(adapter.request_count) if adapter is not None else 0
    except Exception:
        return 0

"""Notifications for newly firing alerts: an HTTP webhook and/or a command.

Once per alert episode and channel: every delivery is recorded in the ledger
(`alert_deliveries`), so a restart never resends, and a crash between "fired" and "notified"
still notifies on the next evaluation (at least once, from the receiver's point of view, only
if the process dies between a 2xx and the ledger write). An alert is due while it fires, is not
muted, and its channel has neither succeeded nor given up; failed rounds are retried on later
evaluations up to `max_rounds`. Within a round the webhook is retried with exponential backoff
(honouring Retry-After). When the webhook fails for one alert, the rest of that round's alerts
are not attempted (the endpoint is down; no point sleeping per alert) and stay due.

Failures never raise: they come back as `DeliveryResult`s and are stored with the error text.
Secrets: webhook URLs of chat services are credentials, so messages only ever show
scheme://host/…; header values are never shown.
"""

from __future__ import annotations

import json
import os
import subprocess
import threading
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

from opcockpit.domain.alerts import AlertsConfig, CommandConfig, WebhookConfig
from opcockpit.domain.secrets import redact_url, scrub
from opcockpit.ports.alert_records import Alert, Delivery, DeliveryOutcome, DeliveryResult

__all__ = ["DeliveryResult", "Notifier", "alert_payload"]  # DeliveryResult: re-export (ports)


__all__ = ["DeliveryResult", "Notifier", "alert_payload", "redact_url"]

_ERROR_CHARS = 300
_COMMAND_ENV = ("PATH", "HOME", "LANG", "TZ")  # all a notification command gets from us
_GRACE_S = 0.5  # past the deadline, for an attempt ending right at it to report
_RETRY_STATUS = frozenset({408, 425, 429, 500, 502, 503, 504})


def _clean(text: str) -> str:
    text = scrub(" ".join(text.split()))
    return text if len(text) <= _ERROR_CHARS else text[: _ERROR_CHARS - 1] + "…"


def alert_payload(alert: Alert, now: datetime) -> dict[str, Any]:
    body = {
        "type": "alert",
        "event": "firing",
        "source": "opcockpit",
        "sent_at": now.astimezone(UTC).isoformat(),
    }
    body.update(alert.to_dict(now))
    return body


class _Round:
    """One round of deliveries shared by the channel workers and the waiting evaluator."""

    def __init__(self, deadline: float, budget_s: float) -> None:
        self.deadline = deadline  # time.monotonic() value
        self.budget_s = budget_s
        self.cond = threading.Condition()
        self.stop = threading.Event()  # deadline passed or interrupted: workers stop at once
        self.closed = False  # the evaluator stopped listening: late results are dropped
        self.results: dict[tuple[int, str], tuple[bool, int, str | None, bool]] = {}
        self.inflight: set[tuple[int, str]] = set()
        self.down: dict[str, str] = {}  # channel -> error, once it failed this round
        self.running = 0  # channel workers still going

    def remaining(self) -> float:
        return self.deadline - time.monotonic()


class Notifier:
    """Sends due notifications for one AlertsConfig.

    One round runs every channel concurrently in daemon threads and waits at most
    `notify_deadline_s` for them (each request's timeout and each backoff is cut to what is left
    of it), so a hung receiver cannot hold up a cron run and an abandoned thread cannot keep the
    process alive. `cancel()` (Ctrl-C in the CLI) ends the round at once. `sleep` is injectable
    (tests record backoffs instead of sleeping them); by default backoffs wait on the round's stop
    event so a cancel wakes them.
    """

    def __init__(
        self,
        config: AlertsConfig,
        *,
        sleep: Callable[[float], None] | None = None,
        env: Mapping[str, str] | None = None,
    ) -> None:
        self.config = config
        self.sleep = sleep
        self.env = os.environ if env is None else env
        self._round: _Round | None = None

    # ---------------------------------------------------------------- public

    def channels(self) -> list[str]:
        out = []
        if self.config.webhook is not None:
            out.append("webhook")
        if self.config.command is not None:
            out.append("command")
        return out

    def cancel(self) -> None:
        """Stop the round in progress now (from any thread): what is not delivered is recorded as
        such and retried on the next evaluation."""
        rnd = self._round
        if rnd is not None:
            with rnd.cond:
                rnd.stop.set()
                rnd.cond.notify_all()

    def deliver(
        self, due: dict[str, list[tuple[Alert, Delivery | None]]], now: datetime
    ) -> list[DeliveryOutcome]:
        """One round over `due` (channel -> (alert, its previous delivery record)). Returns what
        happened per (alert, channel); the caller (services.alert_engine) records it."""
        if not due:
            return []
        budget = self.config.notify_deadline_s
        rnd = _Round(time.monotonic() + budget, budget)
        self._round = rnd
        rnd.running = len(due)
        for channel, items in due.items():
            threading.Thread(
                target=self._worker,
                args=(rnd, channel, [a for a, _ in items], now),
                daemon=True,
                name=f"opcockpit-notify-{channel}",
            ).start()
        try:
            with rnd.cond:
                # The workers bound their own waits by the deadline; the grace lets an attempt that
                # ends right at the deadline report instead of being counted as lost.
                while rnd.running and not rnd.stop.is_set():
                    left = rnd.remaining() + _GRACE_S
                    if left <= 0:
                        break
                    rnd.cond.wait(left)
                rnd.stop.set()
                rnd.closed = True
                rnd.cond.notify_all()
                results = dict(rnd.results)
                inflight = set(rnd.inflight)
                down = dict(rnd.down)
        finally:
            self._round = None
            rnd.stop.set()
        interrupted = rnd.remaining() > 0
        out: list[DeliveryOutcome] = []
        for channel, items in due.items():
            target = self._target(channel)
            for alert, prev in items:
                key = (alert.id, channel)
                if key in results:
                    ok, attempts, error, permanent = results[key]
                    rounds = (prev.rounds if prev is not None else 0) + 1
                    gave_up = not ok and (permanent or rounds >= self._max_rounds(channel))
                    out.append(
                        DeliveryOutcome(
                            DeliveryResult(alert.id, channel, target, ok, attempts, error, gave_up)
                        )
                    )
                elif channel in down:
                    # The endpoint is down: not attempted (no point hammering it), still due.
                    error = _clean(f"not attempted: {channel} failing this round ({down[channel]})")
                    out.append(
                        DeliveryOutcome(
                            DeliveryResult(alert.id, channel, target, False, 0, error), count_round=False
                        )
                    )
                else:
                    why = "interrupted" if interrupted else f"delivery deadline ({budget:g}s) reached"
                    was_sent = key in inflight
                    error = f"not delivered: {why}" + ("" if was_sent else " before it was attempted")
                    # Recorded so the ledger shows it; a round is used only when something was sent.
                    out.append(
                        DeliveryOutcome(
                            DeliveryResult(alert.id, channel, target, False, 1 if was_sent else 0, error),
                            count_round=was_sent,
                        )
                    )
        return out

    def _worker(self, rnd: _Round, channel: str, alerts: list[Alert], now: datetime) -> None:
        try:
            for alert in alerts:
                key = (alert.id, channel)
                with rnd.cond:
                    if rnd.stop.is_set() or channel in rnd.down:
                        return
                    rnd.inflight.add(key)
                try:
                    res = self._send(channel, alert, now, rnd)
                except Exception as exc:  # a notifier bug must not stop the alert loop
                    res = (False, 1, _clean(f"{type(exc).__name__}: {exc}"), False)
                with rnd.cond:
                    if rnd.closed:
                        return  # too late: the evaluator already recorded this one as undelivered
                    rnd.inflight.discard(key)
                    ok, _, error, permanent = res
                    if ok or permanent or not rnd.stop.is_set():
                        rnd.results[key] = res
                    if not ok and not permanent:
                        rnd.down[channel] = error or "failed"
        finally:
            with rnd.cond:
                rnd.running -= 1
                rnd.cond.notify_all()

    # ---------------------------------------------------------------- channels

    def _max_rounds(self, channel: str) -> int:
        cfg = self.config.webhook if channel == "webhook" else self.config.command
        return cfg.max_rounds if cfg is not None else 1

    def _target(self, channel: str) -> str:
        if channel == "webhook":
            url = self._url(self.config.webhook)
            return redact_url(url, hide_path=True) if url else "<no url>"
        cmd = self.config.command
        return os.path.basename(cmd.argv[0]) if cmd is not None else "?"

    def _url(self, cfg: WebhookConfig | None) -> str | None:
        if cfg is None:
            return None
        if cfg.url_env and self.env.get(cfg.url_env):
            return self.env[cfg.url_env]
        return cfg.url

    def _send(
        self, channel: str, alert: Alert, now: datetime, rnd: _Round
    ) -> tuple[bool, int, str | None, bool]:
        """(ok, attempts, error, permanent)."""
        body = json.dumps(alert_payload(alert, now), ensure_ascii=False).encode("utf-8")
        if channel == "webhook":
            assert self.config.webhook is not None
            return self._webhook(self.config.webhook, body, rnd)
        assert self.config.command is not None
        return self._command(self.config.command, alert, body, rnd)

    def _pause(self, seconds: float, rnd: _Round) -> None:
        if self.sleep is not None:
            self.sleep(seconds)
        else:
            rnd.stop.wait(seconds)

    def _webhook(self, cfg: WebhookConfig, body: bytes, rnd: _Round) -> tuple[bool, int, str | None, bool]:
        import httpx

        url = self._url(cfg)
        if not url:
            what = f"${cfg.url_env} is unset" if cfg.url_env else "no url configured"
            return False, 0, f"webhook: {what}", True
        headers = {"content-type": "application/json", "user-agent": "opcockpit-alerts", **cfg.headers}
        for name, var in cfg.headers_env.items():
            if self.env.get(var):
                headers[name] = self.env[var]
        shown = redact_url(url, hide_path=True)
        delay = cfg.backoff_s
        error = "not attempted"
        attempts = 0
        with httpx.Client(timeout=cfg.timeout_s, trust_env=False, follow_redirects=False) as client:
            for attempt in range(1, cfg.attempts + 1):
                left = rnd.remaining()
                if left <= 0 or rnd.stop.is_set():
                    error += f"; delivery deadline ({rnd.budget_s:g}s) reached"
                    break
                attempts = attempt
                wait = delay
                try:
                    resp = client.post(url, content=body, headers=headers, timeout=min(cfg.timeout_s, left))
                except httpx.HTTPError as exc:
                    # str(exc) of httpx can contain the URL: describe by type only.
                    error = f"webhook {shown}: {type(exc).__name__}"
                    if isinstance(exc, httpx.TimeoutException) and rnd.remaining() <= 0:
                        error += f" (no answer within the delivery deadline of {rnd.budget_s:g}s)"
                else:
                    if 200 <= resp.status_code < 300:
                        return True, attempt, None, False
                    error = f"webhook {shown}: HTTP {resp.status_code}"
                    if resp.status_code not in _RETRY_STATUS:
                        return False, attempt, error, True  # the receiver rejects this body: do not loop
                    retry_after = resp.headers.get("retry-after")
                    if retry_after and retry_after.strip().isdigit():
                        wait = max(wait, float(retry_after))
                        if float(retry_after) >= rnd.remaining():
                            # The receiver asks us to come back later than this round may last:
                            # leave it to the next evaluation instead of sleeping through a cron run.
                            error += f" (retry after {int(retry_after)}s: left for the next run)"
                            break
                if attempt < cfg.attempts:
                    pause = min(wait, cfg.max_backoff_s)
                    if pause >= rnd.remaining():
                        error += f"; delivery deadline ({rnd.budget_s:g}s) reached"
                        break
                    self._pause(pause, rnd)
                    delay = min(delay * 2, cfg.max_backoff_s) if delay else 0.0
        return False, attempts, _clean(f"{error} after {attempts} attempt(s)"), False

    def _command(
        self, cfg: CommandConfig, alert: Alert, body: bytes, rnd: _Round
    ) -> tuple[bool, int, str | None, bool]:
        # A minimal environment: the command is a pager hook, not a provider client; it must
        # never inherit provider keys (E2B_API_KEY, …) or webhook credentials.
        env = {k: self.env[k] for k in _COMMAND_ENV if k in self.env}
        env.update(
            {
                "OPCOCKPIT_ALERT_ID": str(alert.id),
                "OPCOCKPIT_ALERT_KEY": alert.key,
                "OPCOCKPIT_ALERT_RULE": alert.rule,
                "OPCOCKPIT_ALERT_SEVERITY": alert.severity.value,
            }
        )
        name = os.path.basename(cfg.argv[0])
        timeout = min(cfg.timeout_s, max(rnd.remaining(), 0.01))
        try:
            proc = subprocess.run(
                cfg.argv, input=body, capture_output=True, timeout=timeout, env=env, check=False
            )
        except subprocess.TimeoutExpired:
            if timeout < cfg.timeout_s:
                return False, 1, f"command {name}: delivery deadline ({rnd.budget_s:g}s) reached", False
            return False, 1, f"command {name}: timed out after {cfg.timeout_s:g}s", False
        except OSError as exc:
            return False, 1, _clean(f"command {name}: {exc.strerror or type(exc).__name__}"), True
        if proc.returncode != 0:
            tail = proc.stderr.decode("utf-8", "replace").strip().splitlines()[-1:] or [""]
            return False, 1, _clean(f"command {name}: exit {proc.returncode} {tail[0]}".rstrip()), False
        return True, 1, None, False

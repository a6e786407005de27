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
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from opcockpit.core.alerts import AlertsConfig, CommandConfig, WebhookConfig

if TYPE_CHECKING:
    from opcockpit.core.alert_store import Alert, AlertStore

__all__ = ["DeliveryResult", "Notifier", "alert_payload", "redact_url"]

_ERROR_CHARS = 300
_RETRY_STATUS = frozenset({408, 425, 429, 500, 502, 503, 504})


@dataclass(frozen=True, slots=True)
class DeliveryResult:
    alert_id: int
    channel: str  # webhook | command
    target: str  # redacted
    ok: bool
    attempts: int  # attempts made this round (0: not attempted)
    error: str | None = None
    gave_up: bool = False


def redact_url(url: str) -> str:
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<invalid url>"
    if not parts.scheme or not parts.hostname:
        return "<invalid url>"
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{parts.hostname}{port}/…"


def _clean(text: str) -> str:
    from opcockpit.config import scrub

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


class Notifier:
    """Sends due notifications for one AlertsConfig. `sleep` is injectable (tests keep it real)."""

    def __init__(
        self,
        config: AlertsConfig,
        *,
        sleep: Callable[[float], None] = time.sleep,
        env: dict[str, str] | None = None,
    ) -> None:
        self.config = config
        self.sleep = sleep
        self.env = os.environ if env is None else env

    # ---------------------------------------------------------------- public

    def channels(self) -> list[str]:
        out = []
        if self.config.webhook is not None:
            out.append("webhook")
        if self.config.command is not None:
            out.append("command")
        return out

    def deliver_due(self, store: AlertStore, now: datetime) -> list[DeliveryResult]:
        results: list[DeliveryResult] = []
        down: dict[str, str] = {}  # channel -> error, once it failed this round
        for alert in sorted(store.active(), key=lambda a: a.id):
            if alert.is_muted(now):
                continue
            for channel in self.channels():
                prev = store.delivery(alert.id, channel)
                if prev is not None and prev.status in ("ok", "gave_up"):
                    continue
                target = self._target(channel)
                if channel in down:
                    results.append(
                        DeliveryResult(
                            alert.id,
                            channel,
                            target,
                            False,
                            0,
                            f"not attempted: {channel} failing this round ({down[channel]})",
                        )
                    )
                    continue
                try:
                    ok, attempts, error, permanent = self._send(channel, alert, now)
                except Exception as exc:  # a notifier bug must not stop the alert loop
                    ok, attempts, error, permanent = False, 1, _clean(f"{type(exc).__name__}: {exc}"), False
                rounds = (prev.rounds if prev is not None else 0) + 1
                max_rounds = self._max_rounds(channel)
                gave_up = not ok and (permanent or rounds >= max_rounds)
                store.record_delivery(
                    alert.id, channel, target, ok=ok, attempts=attempts, error=error, now=now, gave_up=gave_up
                )
                results.append(DeliveryResult(alert.id, channel, target, ok, attempts, error, gave_up))
                if not ok and not permanent:
                    down[channel] = error or "failed"
        return results

    # ---------------------------------------------------------------- channels

    def _max_rounds(self, channel: str) -> int:
        cfg = self.config.webhook if channel == "webhook" else self.config.command
        return cfg.max_rounds if cfg is not None else 1

    def _target(self, channel: str) -> str:
        if channel == "webhook":
            url = self._url(self.config.webhook)
            return redact_url(url) if url else "<no url>"
        cmd = self.config.command
        return os.path.basename(cmd.argv[0]) if cmd is not None else "?"

    def _url(self, cfg: WebhookConfig | None) -> str | None:
        if cfg is None:
            return None
        if cfg.url_env and self.env.get(cfg.url_env):
            return self.env[cfg.url_env]
        return cfg.url

    def _send(self, channel: str, alert: Alert, now: datetime) -> tuple[bool, int, str | None, bool]:
        """(ok, attempts, error, permanent)."""
        body = json.dumps(alert_payload(alert, now), ensure_ascii=False).encode("utf-8")
        if channel == "webhook":
            assert self.config.webhook is not None
            return self._webhook(self.config.webhook, body)
        assert self.config.command is not None
        return self._command(self.config.command, alert, body)

    def _webhook(self, cfg: WebhookConfig, body: bytes) -> tuple[bool, int, str | None, bool]:
        import httpx

        url = self._url(cfg)
        if not url:
            what = f"${cfg.url_env} is unset" if cfg.url_env else "no url configured"
            return False, 0, f"webhook: {what}", True
        headers = {"content-type": "application/json", "user-agent": "opcockpit-alerts", **cfg.headers}
        for name, var in cfg.headers_env.items():
            if self.env.get(var):
                headers[name] = self.env[var]
        shown = redact_url(url)
        delay = cfg.backoff_s
        error = "not attempted"
        attempts = 0
        with httpx.Client(timeout=cfg.timeout_s, trust_env=False, follow_redirects=False) as client:
            for attempt in range(1, cfg.attempts + 1):
                attempts = attempt
                wait = delay
                try:
                    resp = client.post(url, content=body, headers=headers)
                except httpx.HTTPError as exc:
                    # str(exc) of httpx can contain the URL: describe by type only.
                    error = f"webhook {shown}: {type(exc).__name__}"
                else:
                    if 200 <= resp.status_code < 300:
                        return True, attempt, None, False
                    error = f"webhook {shown}: HTTP {resp.status_code}"
                    if resp.status_code not in _RETRY_STATUS:
                        return False, attempt, error, True  # the receiver rejects this body: do not loop
                    retry_after = resp.headers.get("retry-after")
                    if retry_after and retry_after.strip().isdigit():
                        wait = max(wait, float(retry_after))
                if attempt < cfg.attempts:
                    self.sleep(min(wait, cfg.max_backoff_s))
                    delay = min(delay * 2, cfg.max_backoff_s) if delay else 0.0
        return False, attempts, _clean(f"{error} after {attempts} attempt(s)"), False

    def _command(self, cfg: CommandConfig, alert: Alert, body: bytes) -> tuple[bool, int, str | None, bool]:
        env = dict(self.env)
        env.update(
            {
                "OPCOCKPIT_ALERT_ID": str(alert.id),
                "OPCOCKPIT_ALERT_KEY": alert.key,
                "OPCOCKPIT_ALERT_RULE": alert.rule,
                "OPCOCKPIT_ALERT_SEVERITY": alert.severity.value,
            }
        )
        name = os.path.basename(cfg.argv[0])
        try:
            proc = subprocess.run(
                cfg.argv, input=body, capture_output=True, timeout=cfg.timeout_s, env=env, check=False
            )
        except subprocess.TimeoutExpired:
            return False, 1, f"command {name}: timed out after {cfg.timeout_s:g}s", False
        except OSError as exc:
            return False, 1, _clean(f"command {name}: {exc.strerror or type(exc).__name__}"), True
        if proc.returncode != 0:
            tail = proc.stderr.decode("utf-8", "replace").strip().splitlines()[-1:] or [""]
            return False, 1, _clean(f"command {name}: exit {proc.returncode} {tail[0]}".rstrip()), False
        return True, 1, None, False

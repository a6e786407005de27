"""E2B's webhook registration API (plain HTTP; the e2b SDK has no support for it).

`POST /events/webhooks` {name, url, enabled, events, signatureSecret} -> 201; `GET /events/webhooks`
-> list; `DELETE /events/webhooks/{id}` -> 200. Auth: `X-API-Key`. Errors are the adapters' typed
errors with one scrubbed line (never the API key or the signature secret).
"""

from __future__ import annotations

from typing import Any

from opcockpit.adapters.providers.http import error_class_for_status, redact
from opcockpit.adapters.providers.lean_httpx import httpx
from opcockpit.domain.text import one_line
from opcockpit.ports.provider import ProtocolError, Unavailable

__all__ = ["LIFECYCLE_EVENTS", "E2BWebhooks"]

LIFECYCLE_EVENTS = (
    "sandbox.lifecycle.created",
    "sandbox.lifecycle.paused",
    "sandbox.lifecycle.resumed",
    "sandbox.lifecycle.updated",
    "sandbox.lifecycle.killed",
)


class E2BWebhooks:
    def __init__(
        self, base_url: str, api_key: str | None, *, timeout: float = 10.0, name: str = "e2b"
    ) -> None:
        self.name = name
        self._key = api_key
        headers = {"X-API-Key": api_key} if api_key else {}
        self._http = httpx.Client(base_url=base_url.rstrip("/"), headers=headers, timeout=timeout)

    def __repr__(self) -> str:
        return f"E2BWebhooks({self.name!r})"

    def _call(self, method: str, path: str, json: Any = None, secrets: tuple[str | None, ...] = ()) -> Any:
        hide = (self._key, *secrets)
        try:
            response = self._http.request(method, path, json=json)
        except httpx.HTTPError as exc:
            raise Unavailable(
                redact(f"{self.name}: {method} {path}: {type(exc).__name__}: {exc}", hide)
            ) from None
        if response.status_code >= 400:
            try:
                message = str(response.json().get("message") or "")
            except (ValueError, AttributeError):
                message = response.text[:200]
            text = redact(
                one_line(f"{self.name}: {method} {path}: HTTP {response.status_code}: {message}"), hide
            )
            raise error_class_for_status(response.status_code)(text) from None
        if not response.content:
            return None
        try:
            return response.json()
        except ValueError:
            raise ProtocolError(f"{self.name}: {method} {path}: response is not JSON") from None

    def register(
        self, url: str, secret: str, *, name: str = "opcockpit", events: tuple[str, ...] = LIFECYCLE_EVENTS
    ) -> dict[str, Any]:
        body = {"name": name, "url": url, "enabled": True, "events": list(events), "signatureSecret": secret}
        out = self._call("POST", "/events/webhooks", body, secrets=(secret,))
        if not isinstance(out, dict):
            raise ProtocolError(f"{self.name}: POST /events/webhooks: not a webhook object")
        return {k: v for k, v in out.items() if k != "signatureSecret"}

    def list(self) -> list[dict[str, Any]]:
        out = self._call("GET", "/events/webhooks")
        if not isinstance(out, list):
            raise ProtocolError(f"{self.name}: GET /events/webhooks: not a list")
        return [{k: v for k, v in w.items() if k != "signatureSecret"} for w in out if isinstance(w, dict)]

    def delete(self, webhook_id: str) -> None:
        self._call("DELETE", f"/events/webhooks/{webhook_id}")

    def close(self) -> None:
        self._http.close()

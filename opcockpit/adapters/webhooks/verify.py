"""Signature verification per sender kind, on the raw body, constant-time, secrets never shown.

- e2b:     `e2b-signature` = base64(SHA-256(secret + raw body)) without padding, `e2b-signature-version:
           v1`. E2B's docs showed the URL-safe alphabet, deliveries use the standard one (docs PR #88):
           both are accepted. No timestamp is signed, so the payload's own `timestamp` is checked
           against `max_age_s` (replays of old deliveries are refused; 0 turns it off).
- daytona: Svix / Standard Webhooks through the maintained `standardwebhooks` library (HMAC-SHA256
           over "{id}.{timestamp}.{body}", key from `whsec_...`, any space-separated `v1,` signature).
           `svix-*` headers are mapped to `webhook-*` (Daytona sends `svix-*`).
- hmac:    a generic scheme for senders we control: `x-webhook-id`, `x-webhook-timestamp` (unix s),
           `x-webhook-signature: sha256=<hex HMAC-SHA256(secret, "{id}.{timestamp}.{body}")>`.

Every verifier returns a `Delivery` or raises `Rejected(reason)`; the dedup key is stable across
the sender's retries (E2B: the event id in the body, since `e2b-delivery-id` is per attempt).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from collections.abc import Callable, Mapping
from typing import Any

from standardwebhooks import Webhook, WebhookVerificationError
from standardwebhooks.webhooks import EmptyWebhookSecretError

from opcockpit.domain.timeutil import parse_ts
from opcockpit.domain.webhooks import Delivery, Rejected

__all__ = [
    "KINDS",
    "DaytonaVerifier",
    "E2BVerifier",
    "HmacVerifier",
    "build_verifier",
    "e2b_signature",
    "hmac_signature",
]

KINDS = ("e2b", "daytona", "hmac")
SVIX_TOLERANCE_S = 300.0  # standardwebhooks hard-codes 5 minutes; ours may only be stricter


def _sha(body: bytes) -> str:
    return hashlib.sha256(body).hexdigest()


def _json_object(body: bytes) -> dict[str, Any]:
    try:
        payload = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise Rejected("malformed", "body is not JSON") from None
    if not isinstance(payload, dict):
        raise Rejected("malformed", "body is not a JSON object")
    return payload


def _check_time(ts: float, now: float, tolerance_s: float) -> None:
    if tolerance_s > 0 and abs(now - ts) > tolerance_s:
        raise Rejected("stale", "timestamp outside the tolerance")


# --------------------------------------------------------------------------- e2b


def e2b_signature(secret: str, body: bytes) -> str:
    """E2B's v1 signature (standard alphabet, no padding): what the double sends."""
    return base64.b64encode(hashlib.sha256(secret.encode() + body).digest()).decode().rstrip("=")


class E2BVerifier:
    kind = "e2b"

    def __init__(
        self, provider: str, secret: str, *, max_age_s: float = 3600.0, clock: Callable[[], float] = time.time
    ) -> None:
        if not secret:
            raise ValueError("empty webhook secret")
        self.provider = provider
        self._secret = secret.encode()
        self.max_age_s = max_age_s
        self._clock = clock

    def __repr__(self) -> str:  # never the secret
        return f"E2BVerifier({self.provider!r})"

    def verify(self, headers: Mapping[str, str], body: bytes) -> Delivery:
        given = headers.get("e2b-signature")
        if not given:
            raise Rejected("unsigned", "no e2b-signature header")
        version = headers.get("e2b-signature-version", "v1")
        if version != "v1":
            raise Rejected("bad_version", "e2b-signature-version is not v1")
        digest = base64.b64encode(hashlib.sha256(self._secret + body).digest()).rstrip(b"=")
        given_b = given.strip().rstrip("=").encode("ascii", "replace")
        urlsafe = digest.replace(b"+", b"-").replace(b"/", b"_")
        # compare_digest on both spellings every time: no early exit that times the alphabet
        ok_std = hmac.compare_digest(digest, given_b)
        ok_url = hmac.compare_digest(urlsafe, given_b)
        if not (ok_std or ok_url):
            raise Rejected("bad_signature", "e2b-signature does not match the body")
        payload = _json_object(body)
        if self.max_age_s > 0 and (ts := parse_ts(payload.get("timestamp"))) is not None:
            _check_time(ts.timestamp(), self._clock(), self.max_age_s)
        key = payload.get("id") or headers.get("e2b-delivery-id")
        if not key:
            raise Rejected("malformed", "no event id and no e2b-delivery-id")
        ids = {k: headers[k] for k in ("e2b-webhook-id", "e2b-delivery-id") if headers.get(k)}
        return Delivery(self.provider, str(key), _sha(body), payload, ids)


# --------------------------------------------------------------------------- daytona (svix)


class DaytonaVerifier:
    kind = "daytona"

    def __init__(
        self,
        provider: str,
        secret: str,
        *,
        tolerance_s: float = SVIX_TOLERANCE_S,
        clock: Callable[[], float] = time.time,
    ) -> None:
        try:
            self._wh = Webhook(secret)
        except (EmptyWebhookSecretError, ValueError, RuntimeError):
            raise ValueError("webhook secret is not a whsec_<base64> key") from None
        self.provider = provider
        self.tolerance_s = min(tolerance_s, SVIX_TOLERANCE_S)
        self._clock = clock

    def __repr__(self) -> str:
        return f"DaytonaVerifier({self.provider!r})"

    def verify(self, headers: Mapping[str, str], body: bytes) -> Delivery:
        def h(name: str) -> str | None:
            return headers.get(f"webhook-{name}") or headers.get(f"svix-{name}")

        msg_id, stamp, sig = h("id"), h("timestamp"), h("signature")
        if not sig:
            raise Rejected("unsigned", "no svix-signature header")
        if not (msg_id and stamp):
            raise Rejected("malformed", "svix-id or svix-timestamp missing")
        if not any(part.startswith("v1,") for part in sig.split(" ")):
            raise Rejected("bad_version", "no v1 signature")
        try:
            ts = float(stamp)
        except ValueError:
            raise Rejected("malformed", "svix-timestamp is not a number") from None
        _check_time(ts, self._clock(), self.tolerance_s)
        std = {"webhook-id": msg_id, "webhook-timestamp": stamp, "webhook-signature": sig}
        try:
            self._wh.verify(body, std, json_parse=False)
        except WebhookVerificationError as exc:
            text = str(exc)
            if "timestamp" in text:
                raise Rejected("stale", "timestamp outside the tolerance") from None
            if "Signature Headers" in text:
                raise Rejected("malformed", "svix-timestamp unreadable") from None
            raise Rejected("bad_signature", "no matching v1 signature") from None
        payload = _json_object(body)
        return Delivery(self.provider, msg_id, _sha(body), payload, {"svix-id": msg_id})


# --------------------------------------------------------------------------- generic hmac


def hmac_signature(secret: str, msg_id: str, timestamp: str, body: bytes) -> str:
    mac = hmac.new(secret.encode(), f"{msg_id}.{timestamp}.".encode() + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


class HmacVerifier:
    kind = "hmac"

    def __init__(
        self,
        provider: str,
        secret: str,
        *,
        tolerance_s: float = SVIX_TOLERANCE_S,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if not secret:
            raise ValueError("empty webhook secret")
        self.provider = provider
        self._secret = secret
        self.tolerance_s = tolerance_s
        self._clock = clock

    def __repr__(self) -> str:
        return f"HmacVerifier({self.provider!r})"

    def verify(self, headers: Mapping[str, str], body: bytes) -> Delivery:
        sig = headers.get("x-webhook-signature")
        if not sig:
            raise Rejected("unsigned", "no x-webhook-signature header")
        msg_id, stamp = headers.get("x-webhook-id"), headers.get("x-webhook-timestamp")
        if not (msg_id and stamp):
            raise Rejected("malformed", "x-webhook-id or x-webhook-timestamp missing")
        if not sig.startswith("sha256="):
            raise Rejected("bad_version", "signature is not sha256=<hex>")
        try:
            ts = float(stamp)
        except ValueError:
            raise Rejected("malformed", "x-webhook-timestamp is not a number") from None
        _check_time(ts, self._clock(), self.tolerance_s)
        want = hmac_signature(self._secret, msg_id, stamp, body)
        if not hmac.compare_digest(want.encode(), sig.strip().lower().encode("ascii", "replace")):
            raise Rejected("bad_signature", "x-webhook-signature does not match the body")
        payload = _json_object(body)
        return Delivery(self.provider, msg_id, _sha(body), payload, {"x-webhook-id": msg_id})


def build_verifier(
    provider: str, kind: str, secret: str, *, tolerance_s: float | None = None
) -> E2BVerifier | DaytonaVerifier | HmacVerifier:
    """The verifier for `kind` ("e2b" | "daytona" | "hmac"); ValueError on a bad kind or secret."""
    if kind == "e2b":
        return E2BVerifier(provider, secret, max_age_s=3600.0 if tolerance_s is None else tolerance_s)
    if kind == "daytona":
        return DaytonaVerifier(provider, secret, tolerance_s=tolerance_s or SVIX_TOLERANCE_S)
    if kind == "hmac":
        return HmacVerifier(provider, secret, tolerance_s=tolerance_s or SVIX_TOLERANCE_S)
    raise ValueError(f"unknown webhook kind {kind!r} (want one of {', '.join(KINDS)})")

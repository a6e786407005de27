"""Signature verification per kind: valid deliveries pass, every forgery is refused with its reason."""

from __future__ import annotations

import base64
import hashlib
import json
import time
from datetime import UTC, datetime

import pytest
from standardwebhooks import Webhook

from opcockpit.adapters.webhooks.verify import (
    DaytonaVerifier,
    E2BVerifier,
    HmacVerifier,
    build_verifier,
    e2b_signature,
    hmac_signature,
)
from opcockpit.domain.webhooks import Rejected, instance_id_of

E2B_SECRET = "e2b-webhook-secret-0123456789"
WHSEC = "whsec_" + base64.b64encode(b"daytona-signing-key-32-bytes!!!!").decode()


def _e2b_body(**over: object) -> bytes:
    event = {"version": "v1", "id": "ev-1", "type": "sandbox.lifecycle.paused", "sandboxId": "sbx1",
             "timestamp": datetime.now(UTC).isoformat(), "eventData": None}  # fmt: skip
    event.update(over)
    return json.dumps(event).encode()


def _reason(verifier: object, headers: dict[str, str], body: bytes) -> str:
    with pytest.raises(Rejected) as info:
        verifier.verify(headers, body)  # type: ignore[attr-defined]
    assert E2B_SECRET not in str(info.value) and WHSEC not in str(info.value)
    return info.value.reason


def test_e2b_accepts_both_alphabets_and_uses_the_event_id() -> None:
    v = E2BVerifier("e2b", E2B_SECRET)
    body = _e2b_body()
    std = e2b_signature(E2B_SECRET, body)
    assert std == base64.b64encode(hashlib.sha256(E2B_SECRET.encode() + body).digest()).decode().rstrip("=")
    urlsafe = (
        base64.urlsafe_b64encode(hashlib.sha256(E2B_SECRET.encode() + body).digest()).decode().rstrip("=")
    )
    for sig in (std, urlsafe):
        d = v.verify({"e2b-signature": sig, "e2b-signature-version": "v1", "e2b-delivery-id": "d1"}, body)
        assert d.key == "ev-1" and d.payload["sandboxId"] == "sbx1"
        assert d.headers == {"e2b-delivery-id": "d1"}
    assert instance_id_of(d.payload) == "sbx1"  # never the event id


def test_e2b_refusals() -> None:
    v = E2BVerifier("e2b", E2B_SECRET)
    body = _e2b_body()
    good = e2b_signature(E2B_SECRET, body)
    assert _reason(v, {}, body) == "unsigned"
    assert _reason(v, {"e2b-signature": e2b_signature("wrong", body)}, body) == "bad_signature"
    assert _reason(v, {"e2b-signature": good}, body + b" ") == "bad_signature"
    assert _reason(v, {"e2b-signature": good, "e2b-signature-version": "v2"}, body) == "bad_version"
    old = _e2b_body(timestamp="2020-01-01T00:00:00Z")
    assert _reason(v, {"e2b-signature": e2b_signature(E2B_SECRET, old)}, old) == "stale"
    arr = b"[1,2]"
    assert _reason(v, {"e2b-signature": e2b_signature(E2B_SECRET, arr)}, arr) == "malformed"
    assert "e2b-webhook-secret" not in repr(v)


def test_daytona_svix_via_standardwebhooks() -> None:
    v = DaytonaVerifier("daytona", WHSEC)
    body = json.dumps({"event": "sandbox.state.updated", "id": "sb-9", "oldState": "started",
                       "newState": "stopped"}).encode()  # fmt: skip
    now = datetime.now(UTC)
    sig = Webhook(WHSEC).sign("msg_1", now, body)
    stamp = str(int(now.timestamp()))
    headers = {"svix-id": "msg_1", "svix-timestamp": stamp, "svix-signature": f"v1,AAAA {sig}"}
    d = v.verify(headers, body)
    assert d.key == "msg_1" and instance_id_of(d.payload) == "sb-9"
    # webhook-* (whitelabel headers) work too
    assert (
        v.verify({"webhook-id": "msg_1", "webhook-timestamp": stamp, "webhook-signature": sig}, body).key
        == "msg_1"
    )
    assert _reason(v, {"svix-id": "msg_1", "svix-timestamp": stamp}, body) == "unsigned"
    assert _reason(v, {**headers, "svix-signature": "v1,AAAA"}, body) == "bad_signature"
    assert _reason(v, {**headers, "svix-signature": "v1a,AAAA"}, body) == "bad_version"
    assert _reason(v, {**headers, "svix-id": "msg_2"}, body) == "bad_signature"
    old = datetime.fromtimestamp(time.time() - 600, UTC)
    stale = {"svix-id": "m", "svix-timestamp": str(int(old.timestamp())),
             "svix-signature": Webhook(WHSEC).sign("m", old, body)}  # fmt: skip
    assert _reason(v, stale, body) == "stale"
    assert _reason(v, {**headers, "svix-timestamp": "soon"}, body) == "malformed"
    with pytest.raises(ValueError):
        DaytonaVerifier("daytona", "")


def test_generic_hmac() -> None:
    v = HmacVerifier("acme", "hmac-secret-value-123")
    body = b'{"type":"x","instance_id":"i-1"}'
    stamp = str(int(time.time()))
    headers = {"x-webhook-id": "a1", "x-webhook-timestamp": stamp,
               "x-webhook-signature": hmac_signature("hmac-secret-value-123", "a1", stamp, body)}  # fmt: skip
    assert v.verify(headers, body).key == "a1"
    assert _reason(v, {**headers, "x-webhook-signature": "sha256=00"}, body) == "bad_signature"
    assert _reason(v, {**headers, "x-webhook-timestamp": str(int(time.time()) - 3600)}, body) == "stale"
    with pytest.raises(ValueError, match="unknown webhook kind"):
        build_verifier("x", "nope", "s")

"""A notification goes out exactly once across cockpits sharing a ledger: each due delivery is
claimed in the ledger first and only the claimer sends it (issue 12)."""

from __future__ import annotations

from pathlib import Path

from opcockpit.adapters.ledger.alerts import AlertStore
from opcockpit.domain.alerts import AlertsConfig, WebhookConfig
from opcockpit.wiring import build_alert_engine
from tests.alerts_support import Clock, ground_truth, listing
from tests.notify_support import Receiver, recovering_fleet

L1 = "lease-0000000000a1"


def test_only_the_claimer_sends_and_an_expired_claim_is_taken_over(tmp_path: Path) -> None:
    fleet, ledger, clock = recovering_fleet(tmp_path / "sandbox.db", [L1]), tmp_path / "ledger.db", Clock()

    def picture():  # type: ignore[no-untyped-def]
        return ground_truth(fleet, [listing("docker", "docker", listed_at=clock.now)], clock.now)

    with Receiver() as rx:
        cfg = AlertsConfig(recovering_for_s=0, webhook=WebhookConfig(url=rx.url, attempts=1))
        other = AlertStore.open(ledger)  # a second cockpit on the same ledger
        mine = build_alert_engine(AlertStore.open(ledger), cfg, clock)
        mine.owner = "cockpit-a"

        # The first evaluation opens the alert; make the other cockpit hold the send claim.
        mine.notifier = None  # evaluate without notifying, to learn the alert id
        alert = mine.evaluate(picture()).newly_firing[0]
        assert other.claim_delivery(alert.id, "webhook", "cockpit-b", now=clock.now, hold_s=120)
        assert not other.claim_delivery(alert.id, "webhook", "cockpit-c", now=clock.now)  # one claimer

        mine = build_alert_engine(AlertStore.open(ledger), cfg, clock)
        mine.owner = "cockpit-a"
        clock.advance(30)
        snap = mine.evaluate(picture())
        assert snap.deliveries == () and rx.requests == []  # b is sending it: a stays quiet

        clock.advance(120)  # b died holding the claim: after hold_s the claim is free again
        snap = mine.evaluate(picture())
        assert [d.ok for d in snap.deliveries] == [True] and len(rx.requests) == 1

        clock.advance(30)  # delivered: nobody sends it again, whoever asks
        assert not other.claim_delivery(alert.id, "webhook", "cockpit-b", now=clock.now)
        snap = mine.evaluate(picture())
        assert snap.deliveries == () and len(rx.requests) == 1

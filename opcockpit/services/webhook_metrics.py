"""The webhook receiver's counters and latency histogram, rendered as Prometheus text 0.0.4
(`GET /metrics` of `opcockpit serve`): received, accepted, duplicate, stored, rejected by reason,
request seconds, queue depth. Unknown provider names are counted as "-", never as labels."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = ["LATENCY_BUCKETS", "Metrics"]

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


@dataclass
class Metrics:
    received: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    accepted: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    duplicate: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    stored: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    rejected: dict[tuple[str, str], int] = field(default_factory=lambda: defaultdict(int))
    buckets: list[int] = field(default_factory=lambda: [0] * (len(LATENCY_BUCKETS) + 1))
    latency_sum: float = 0.0
    latency_count: int = 0
    queue_depth: Callable[[], int] = lambda: 0

    def observe(self, seconds: float) -> None:
        self.latency_sum += seconds
        self.latency_count += 1
        for i, bound in enumerate(LATENCY_BUCKETS):
            if seconds <= bound:
                self.buckets[i] += 1
                return
        self.buckets[-1] += 1

    def render(self) -> str:
        """Prometheus text format 0.0.4."""
        out: list[str] = []

        def counter(
            name: str, help_text: str, values: Mapping[Any, int], labels: Callable[[Any], str]
        ) -> None:
            out.append(f"# HELP {name} {help_text}")
            out.append(f"# TYPE {name} counter")
            for key, value in sorted(values.items()):
                out.append(f"{name}{{{labels(key)}}} {value}")

        def prov(p: str) -> str:
            return f'provider="{_label(p)}"'

        counter("opcockpit_webhooks_received_total", "Webhook requests received.", self.received, prov)
        counter("opcockpit_webhooks_accepted_total", "Deliveries verified and stored (or already stored).",
                self.accepted, prov)  # fmt: skip
        counter("opcockpit_webhooks_duplicate_total", "Deliveries seen before (2xx, not stored again).",
                self.duplicate, prov)  # fmt: skip
        counter("opcockpit_webhooks_stored_total", "Events appended to the ledger.", self.stored, prov)
        counter("opcockpit_webhooks_rejected_total", "Requests refused, by reason.", self.rejected,
                lambda k: f'provider="{_label(k[0])}",reason="{k[1]}"')  # fmt: skip
        name = "opcockpit_webhooks_request_seconds"
        out += [f"# HELP {name} Time from request to answer.", f"# TYPE {name} histogram"]
        cumulative = 0
        for bound, n in zip(LATENCY_BUCKETS, self.buckets, strict=False):
            cumulative += n
            out.append(f'{name}_bucket{{le="{bound:g}"}} {cumulative}')
        out.append(f'{name}_bucket{{le="+Inf"}} {self.latency_count}')
        out.append(f"{name}_sum {self.latency_sum:.6f}")
        out.append(f"{name}_count {self.latency_count}")
        out += ["# HELP opcockpit_webhooks_queue_depth Deliveries waiting for the ledger.",
                "# TYPE opcockpit_webhooks_queue_depth gauge",
                f"opcockpit_webhooks_queue_depth {self.queue_depth()}"]  # fmt: skip
        return "\n".join(out) + "\n"


def _label(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")

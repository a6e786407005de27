"""What a generated demo fleet is: its providers, the instances the doubles hold, the drift."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

DEFAULT_PROVIDERS: dict[str, str] = {
    "docker": "docker",
    "e2b": "e2b",
    "daytona": "daytona",
    "agentbay": "agentbay",
    "local": "local",
}
DEFAULT_WEIGHTS: dict[str, float] = {
    "docker": 0.30,
    "e2b": 0.25,
    "daytona": 0.20,
    "agentbay": 0.10,
    "local": 0.15,
}
REMOTE_KINDS = ("docker", "e2b", "daytona", "agentbay")


# --------------------------------------------------------------------------- public results


@dataclass(frozen=True)
class InstanceSpec:
    """One instance a provider double should hold.

    `instance_id` is LEON's id (`current_instance_id`; for Docker the container name, which the
    DockerDouble uses as its key). `state` is the normalised word the doubles take.
    """

    provider: str
    kind: str
    instance_id: str
    state: str  # running | paused | stopped
    labels: dict[str, str]
    created_at: datetime
    name: str | None = None
    lease_id: str | None = None  # lease this instance belongs to or claims
    role: str = "bound"  # bound | paused_drift | orphan_replaced | orphan_untracked | leak
    extra: dict[str, str] = field(default_factory=dict)  # e.g. docker_id


@dataclass(frozen=True)
class DriftItem:
    provider: str
    instance_id: str
    lease_id: str | None


@dataclass
class PlannedDrift:
    """Deliberate disagreements between sandbox.db and the providers."""

    paused_at_provider: list[DriftItem] = field(default_factory=list)  # DB running, provider paused
    killed: list[DriftItem] = field(default_factory=list)  # DB running, instance gone
    orphans: list[DriftItem] = field(default_factory=list)  # no lease accounts for them
    leaks: list[DriftItem] = field(default_factory=list)  # destroyed lease, instance still runs


@dataclass
class DemoFleet:
    directory: Path
    sandbox_db: Path
    events_db: Path
    seed: int
    lease_count: int
    providers: dict[str, str]  # provider name -> kind
    instances: dict[str, list[InstanceSpec]]  # provider name -> what its double holds
    drift: PlannedDrift
    generated_at: datetime  # the `now` the fleet was generated against (aware UTC)
    counts: dict[str, int]  # rows written per table

    def specs(self, provider: str) -> list[InstanceSpec]:
        return self.instances.get(provider, [])

"""The `[events]` config table, apart from the event models (domain/events.py re-exports it).

The settings loader validates `[events]` on every command; importing it from here keeps the
event models and the diff out of the settings import (issue 9: start-up time).
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["EventsConfig"]


class EventsConfig(BaseModel):
    """Retention of the `events` table (the `[events]` config table; defaults are the product's)."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    enabled: bool = True
    retention_days: float = Field(default=30.0, gt=0, le=3650)
    max_rows: int = Field(default=1_000_000, ge=1000)
    compact_every: int = Field(default=10_000, ge=1)  # appended rows between retention passes

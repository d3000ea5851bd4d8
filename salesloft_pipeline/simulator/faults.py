"""Fault injection: what can go wrong between a client and SalesLoft."""

from __future__ import annotations

import random
import threading
from collections import deque
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

RANDOM_KINDS = ("5xx", "slow", "drop", "truncate")
NAMED_FAULTS = ("slow", "drop", "truncate")


class FaultSettings(BaseModel):
    """The run-time fault settings (`POST /__sim/faults`, docs/simulator.md)."""

    model_config = ConfigDict(extra="forbid")

    next: list[str] = Field(default_factory=list)
    rate: float = Field(0.0, ge=0.0, le=1.0)
    kinds: list[str] = Field(default_factory=lambda: list(RANDOM_KINDS))
    slow_seconds: float = Field(5.0, ge=0.0, le=600.0)
    external_spend: int = Field(0, ge=0)
    spend_now: int = Field(0, ge=0)

    @field_validator("next")
    @classmethod
    def _known_faults(cls, faults: list[str]) -> list[str]:
        for fault in faults:
            if fault not in NAMED_FAULTS and not (fault.isdigit() and 400 <= int(fault) <= 599):
                raise ValueError(f"unknown fault {fault!r}: use an HTTP status or one of {NAMED_FAULTS}")
        return faults

    @field_validator("kinds")
    @classmethod
    def _known_kinds(cls, kinds: list[str]) -> list[str]:
        unknown = set(kinds) - set(RANDOM_KINDS)
        if unknown:
            raise ValueError(f"unknown fault kinds {sorted(unknown)}: use {RANDOM_KINDS}")
        return kinds


class Faults:
    """Chooses the fault, if any, for each `/v2` request."""

    def __init__(self, settings: FaultSettings, seed: int) -> None:
        self._lock = threading.Lock()
        self._rng = random.Random(f"faults-{seed}")
        self.apply(settings)

    def apply(self, settings: FaultSettings) -> None:
        with self._lock:
            self.settings = settings
            self._queue: deque[str] = deque(settings.next)

    def describe(self) -> dict[str, Any]:
        with self._lock:
            data = self.settings.model_dump()
            data["next"] = list(self._queue)
            return data

    def pick(self) -> str | None:
        """The fault for the next request: a status code as text, a named fault, or None."""
        with self._lock:
            if self._queue:
                return self._queue.popleft()
            settings = self.settings
            if settings.rate and settings.kinds and self._rng.random() < settings.rate:
                kind = self._rng.choice(settings.kinds)
                return self._rng.choice(("500", "502", "503", "504")) if kind == "5xx" else kind
            return None

"""Per-socket rate limits: a token bucket per kind of message."""

from __future__ import annotations

import time
from dataclasses import dataclass, field


@dataclass(slots=True)
class TokenBucket:
    """Allows `rate` events per second on average and bursts of up to `burst`."""

    rate: float
    burst: float
    tokens: float = field(init=False)
    stamp: float | None = field(init=False, default=None)

    def __post_init__(self) -> None:
        self.tokens = self.burst

    def take(self, now: float | None = None) -> bool:
        now = time.monotonic() if now is None else now
        if self.stamp is not None:
            self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        if self.tokens < 1:
            return False
        self.tokens -= 1
        return True

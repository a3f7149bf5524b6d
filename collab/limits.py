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
    behind_since: float | None = field(init=False, default=None)
    """When the events began to come faster than the bucket refills, without a break
    long enough for a whole token since: the start of the current backlog."""

    def __post_init__(self) -> None:
        self.tokens = self.burst

    def _refill(self, now: float) -> None:
        if self.stamp is not None:
            self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now

    def take(self, now: float | None = None) -> bool:
        """Take a token if there is one (for events that are dropped or held otherwise)."""
        now = time.monotonic() if now is None else now
        self._refill(now)
        if self.tokens < 1:
            return False
        self.tokens -= 1
        return True

    def reserve(self, now: float | None = None) -> float:
        """Take a token, on credit if none is left: the seconds until it is due (0.0 when
        it was there). The caller waits that long before it handles the event, and asks
        for the next one only then, so the credit never exceeds one token."""
        now = time.monotonic() if now is None else now
        # Inline, not _refill(): this runs once or twice per frame of every socket.
        tokens = self.tokens
        if self.stamp is not None:
            tokens = min(self.burst, tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        self.tokens = tokens = tokens - 1
        if tokens >= 0:
            self.behind_since = None
            return 0.0
        if self.behind_since is None:
            self.behind_since = now
        return -tokens / self.rate

    def behind(self, now: float) -> float:
        """How long the events have been coming faster than the rate without a break:
        how many seconds of budget the sender was ahead, at least."""
        return 0.0 if self.behind_since is None else now - self.behind_since

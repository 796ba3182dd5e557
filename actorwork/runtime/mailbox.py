"""A bounded mailbox: a deque with one reader and waiting writers.

Built on plain asyncio futures instead of anyio memory streams because this is the
hottest path of the runtime: ``put_nowait`` and ``get`` of an item already waiting
never suspend and cost a deque operation each. When full, ``put`` waits (that is the
back-pressure a fast sender feels); ``close`` wakes everyone and hands back what was
never delivered, so pending asks can be failed rather than forgotten.
"""

from __future__ import annotations

import asyncio
from collections import deque
from typing import Generic, TypeVar

from actorwork.errors import ActorStopped

__all__ = ["Mailbox"]

T = TypeVar("T")


class Mailbox(Generic[T]):
    """FIFO of at most ``capacity`` items; one consumer."""

    __slots__ = ("_closed", "_getter", "_items", "_loop", "_putters", "capacity", "owner")

    def __init__(self, capacity: int, owner: str = "") -> None:
        if capacity < 1:
            raise ValueError(f"mailbox capacity must be at least 1, got {capacity!r}")
        self.capacity = capacity
        self.owner = owner
        self._items: deque[T] = deque()
        self._getter: asyncio.Future[None] | None = None
        self._putters: deque[asyncio.Future[None]] = deque()
        self._closed = False
        self._loop: asyncio.AbstractEventLoop | None = None

    def __len__(self) -> int:
        return len(self._items)

    @property
    def closed(self) -> bool:
        return self._closed

    def put_nowait(self, item: T) -> bool:
        """Add ``item`` if there is room; False if full. ActorStopped once closed."""
        if self._closed:
            raise ActorStopped(f"actor {self.owner!r} has stopped")
        if len(self._items) >= self.capacity:
            return False
        self._items.append(item)
        getter = self._getter
        if getter is not None and not getter.done():
            getter.set_result(None)
        return True

    async def put(self, item: T) -> None:
        """Add ``item``, waiting for room. ActorStopped if the mailbox closes meanwhile."""
        while not self.put_nowait(item):
            waiter = self._future()
            self._putters.append(waiter)
            try:
                await waiter
            except BaseException:
                # Woken and then cancelled before running: hand the wake-up on, or
                # the next sender waits for room that is already there.
                if waiter.done() and not waiter.cancelled() and not self._closed:
                    self._wake_putter()
                waiter.cancel()
                raise

    async def get(self) -> T:
        """The next item, waiting for one. ActorStopped once closed and empty."""
        items = self._items
        while not items:
            if self._closed:
                raise ActorStopped(f"actor {self.owner!r} has stopped")
            self._getter = self._future()
            try:
                await self._getter
            finally:
                self._getter = None
        item = items.popleft()
        if self._putters:
            self._wake_putter()
        return item

    def _future(self) -> asyncio.Future[None]:
        loop = self._loop
        if loop is None:  # cached: asking asyncio for the running loop costs a getpid()
            loop = self._loop = asyncio.get_running_loop()
        return loop.create_future()

    def _wake_putter(self) -> None:
        while self._putters:
            waiter = self._putters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return

    def close(self) -> list[T]:
        """Refuse further items, wake all waiters, return the undelivered items."""
        self._closed = True
        left = list(self._items)
        self._items.clear()
        if self._getter is not None and not self._getter.done():
            self._getter.set_result(None)
        while self._putters:
            waiter = self._putters.popleft()
            if not waiter.done():
                waiter.set_result(None)
        return left

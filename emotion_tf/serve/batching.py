"""Dynamic batching: concurrent requests share one model call.

A request waits at most `batch_timeout_s` (counted from the oldest waiting request) for others
to join it, up to `max_batch_size` instances; one model call runs at a time in a worker thread,
and the next batch gathers while it runs, so batches grow with load. At most `max_queued`
instances wait; past that `submit` raises `QueueFullError` at once (an HTTP 503), rather than
letting latency grow without bound.
"""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import contextlib
import dataclasses
import logging
import time
from collections.abc import Callable, Hashable, Sequence
from typing import Any

log = logging.getLogger(__name__)

# run(key, payloads) -> one result or exception per payload, in order.
BatchRunner = Callable[[Hashable, Sequence[Any]], Sequence[Any]]


class QueueFullError(Exception):
    """The batching queue is at its bound; the caller should answer 503 (retry later)."""


@dataclasses.dataclass
class _Pending:
    key: Hashable
    payload: Any
    size: int
    arrived: float
    future: asyncio.Future


@dataclasses.dataclass
class BatchStats:
    """Counters for /healthz and the benchmark: how well batching is working."""

    batches: int = 0
    instances: int = 0
    requests: int = 0
    rejected: int = 0
    largest_batch: int = 0

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["mean_batch_size"] = round(self.instances / self.batches, 2) if self.batches else 0.0
        return data


class DynamicBatcher:
    """Collects submitted payloads into batches and runs them with `runner` in one thread."""

    def __init__(
        self,
        runner: BatchRunner,
        max_batch_size: int = 32,
        batch_timeout_s: float = 0.005,
        max_queued: int = 256,
    ):
        if max_batch_size < 1:
            raise ValueError(
                f"max_batch_size must be >= 1. Received: max_batch_size={max_batch_size}"
            )
        if batch_timeout_s < 0:
            raise ValueError(
                f"batch_timeout_s must be >= 0. Received: batch_timeout_s={batch_timeout_s}"
            )
        if max_queued < max_batch_size:
            raise ValueError(
                f"max_queued must be >= max_batch_size ({max_batch_size}). "
                f"Received: max_queued={max_queued}"
            )
        self.runner = runner
        self.max_batch_size = max_batch_size
        self.batch_timeout_s = batch_timeout_s
        self.max_queued = max_queued
        self.stats = BatchStats()
        self.on_batch: Callable[[int], None] | None = None  # called with each batch's size
        self._pending: collections.deque[_Pending] = collections.deque()
        self._queued = 0
        self._wakeup: asyncio.Event | None = None
        self._task: asyncio.Task | None = None
        self._executor: concurrent.futures.ThreadPoolExecutor | None = None

    @property
    def queued(self) -> int:
        """Instances waiting for a model call (not counting the one running)."""
        return self._queued

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    async def start(self) -> None:
        """Start the batching loop on the running event loop."""
        self._wakeup = asyncio.Event()
        self._executor = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="model")
        self._task = asyncio.create_task(self._loop(), name="dynamic-batcher")

    async def stop(self) -> None:
        """Stop the loop; waiting requests get a RuntimeError."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        for item in self._pending:
            if not item.future.done():
                item.future.set_exception(RuntimeError("server is shutting down"))
        self._pending.clear()
        self._queued = 0
        if self._executor is not None:
            self._executor.shutdown(wait=True)

    async def submit(self, key: Hashable, payload: Any, size: int) -> Any:
        """Queue `payload` (`size` instances) and wait for its result."""
        if not self.running or self._wakeup is None:
            raise RuntimeError("batcher is not running")
        # A request larger than the bound would never fit; it is admitted when the queue is empty.
        if self._queued and self._queued + size > self.max_queued:
            self.stats.rejected += 1
            raise QueueFullError(
                f"server is overloaded: {self._queued} instances already queued "
                f"(limit {self.max_queued}, --max-queue); retry later"
            )
        future = asyncio.get_running_loop().create_future()
        self._pending.append(_Pending(key, payload, size, time.monotonic(), future))
        self._queued += size
        self._wakeup.set()
        return await future

    def _same_key_size(self, key: Hashable) -> int:
        return sum(item.size for item in self._pending if item.key == key)

    def _take_batch(self) -> list[_Pending]:
        """The oldest request plus later ones with its key, in order, up to the batch size."""
        first = self._pending[0]
        batch, size, rest = [], 0, collections.deque()
        for item in self._pending:
            if item.key == first.key and (not batch or size + item.size <= self.max_batch_size):
                batch.append(item)
                size += item.size
            else:
                rest.append(item)
        self._pending = rest
        self._queued -= size
        return batch

    async def _loop(self) -> None:
        assert self._wakeup is not None
        loop = asyncio.get_running_loop()
        while True:
            while not self._pending:
                self._wakeup.clear()
                await self._wakeup.wait()
            first = self._pending[0]
            deadline = first.arrived + self.batch_timeout_s
            while self._same_key_size(first.key) < self.max_batch_size:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                self._wakeup.clear()
                try:
                    await asyncio.wait_for(self._wakeup.wait(), remaining)
                except asyncio.TimeoutError:
                    break
            batch = self._take_batch()
            live = [item for item in batch if not item.future.done()]  # skip cancelled clients
            if not live:
                continue
            try:
                results = await loop.run_in_executor(
                    self._executor, self.runner, first.key, [item.payload for item in live]
                )
                if len(results) != len(live):
                    raise RuntimeError(
                        f"batch runner returned {len(results)} results for {len(live)}"
                    )
            except Exception as err:  # the loop must survive anything a model call raises
                log.exception("model call failed for a batch of %d request(s)", len(live))
                results = [err] * len(live)
            self.stats.batches += 1
            self.stats.requests += len(live)
            instances = sum(item.size for item in live)
            self.stats.instances += instances
            self.stats.largest_batch = max(self.stats.largest_batch, instances)
            if self.on_batch is not None:
                self.on_batch(instances)
            for item, result in zip(live, results):
                if item.future.done():
                    continue
                if isinstance(result, BaseException):
                    item.future.set_exception(result)
                else:
                    item.future.set_result(result)

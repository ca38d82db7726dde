"""The engine behind asyncio: many concurrent requests, one engine loop, each request a stream of outputs.

``AsyncEngine.generate(prompt_ids, params)`` is an async iterator of :class:`~llmlab.serve.engine.StepOutput`.
Requests only *queue* additions and aborts; the single loop task applies them between steps and runs each
``engine.step()`` in a worker thread (``asyncio.to_thread``), so the event loop keeps accepting requests
and streaming tokens while the model computes, and the engine's state is only ever touched by one thread
at a time. A request whose consumer goes away (the HTTP client disconnected, the task was cancelled)
is aborted in its ``finally``: the engine frees its KV blocks at the next step boundary.

Back-pressure: at most ``max_queue`` requests in flight; one more raises :class:`QueueFull` at once
(the server answers 429) instead of waiting without bound. If the loop dies, every request gets
:class:`EngineDead` (503).
"""

from __future__ import annotations

import asyncio
import itertools

from .engine import LLMEngine, StepOutput
from .request import SamplingParams


class QueueFull(RuntimeError):
    pass


class EngineDead(RuntimeError):
    pass


class AsyncEngine:
    def __init__(self, engine: LLMEngine, max_queue: int = 256):
        self.engine, self.max_queue = engine, max_queue
        self._streams: dict[str, asyncio.Queue] = {}
        self._adds: list[tuple[str, list[int], SamplingParams]] = []
        self._aborts: list[str] = []
        self._wake: asyncio.Event | None = None
        self._task: asyncio.Task | None = None
        self._ids = itertools.count()
        self.error: BaseException | None = None

    # -- lifecycle ---------------------------------------------------------------------------------------
    async def start(self) -> None:
        self._wake = asyncio.Event()
        self._task = asyncio.create_task(self._loop())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except (asyncio.CancelledError, Exception):
                pass
            self._task = None

    @property
    def num_in_flight(self) -> int:
        return len(self._streams)

    def is_idle(self) -> bool:
        """No request in flight and every KV block free (what the load test checks)."""
        bm = self.engine.block_manager
        return not self._streams and not self.engine.has_work() and bm.num_free == bm.num_blocks

    # -- requests ----------------------------------------------------------------------------------------
    async def generate(self, prompt_ids: list[int], params: SamplingParams, request_id: str | None = None):
        if self.error is not None or self._task is None:
            raise EngineDead(f"the engine is not running ({self.error!r})")
        if len(self._streams) >= self.max_queue:
            raise QueueFull(f"{len(self._streams)} requests in flight (limit {self.max_queue})")
        rid = request_id or f"req-{next(self._ids)}"
        queue: asyncio.Queue = asyncio.Queue()
        self._streams[rid] = queue
        self._adds.append((rid, list(prompt_ids), params))
        self._wake.set()
        finished = False
        try:
            while not finished:
                out = await queue.get()
                if isinstance(out, BaseException):
                    raise out
                finished = out.finished
                yield out
        finally:
            self._streams.pop(rid, None)
            if not finished:                       # cancelled or failed: free its blocks
                self._aborts.append(rid)
                if self._wake is not None:
                    self._wake.set()

    # -- the loop ----------------------------------------------------------------------------------------
    def _apply_pending(self) -> None:
        adds, self._adds = self._adds, []
        for rid, ids, params in adds:
            if rid not in self._streams:           # cancelled before it started
                continue
            try:
                self.engine.add_request(ids, params, rid)
            except ValueError as e:
                self._streams[rid].put_nowait(e)
        aborts, self._aborts = self._aborts, []
        for rid in aborts:
            self.engine.abort(rid)

    async def _loop(self) -> None:
        try:
            while True:
                self._apply_pending()
                if not self.engine.has_work():
                    self._wake.clear()
                    if self._adds or self._aborts:
                        continue
                    await self._wake.wait()
                    continue
                outputs: list[StepOutput] = await asyncio.to_thread(self.engine.step)
                for out in outputs:
                    queue = self._streams.get(out.request_id)
                    if queue is not None:
                        queue.put_nowait(out)
        except asyncio.CancelledError:
            raise
        except BaseException as e:                 # a bug or an OOM: fail every request, refuse new ones
            self.error = e
            for queue in self._streams.values():
                queue.put_nowait(EngineDead(f"engine failed: {e!r}"))
            raise

"""Faust's fetch loop with each record's callback run inline until it first has to wait.

For every record fetched, faust-streaming 0.15's ``Consumer._drain_messages`` hands the record
to the conductor through ``Service.wait_first(callback(message), suspend_flow.wait())``: four
asyncio tasks created (the callback, the suspension, and mode's stopped and crashed events) and
three cancelled, so that a callback blocked on a full agent buffer is abandoned when a rebalance
suspends the flow. The callback almost never blocks, yet the tasks cost about 90 us per record
on the bench machine, more than the rest of Faust's consume path together.

``drain_messages`` is Faust's loop with one change: ``deliver`` steps the callback inline and
falls back to ``wait_first``, with the very coroutine it started, only when the callback has to
wait (or the flow is already suspended); and the records of a topic read in bulk go to their
agent a fetch at a time (``compat/bulk.py``). What a record meets is otherwise the same: the same
offsets, gaps, commits and flow control. ``tests/test_compat.py`` pins the upstream loop, so an
upgrade that changes it fails there first.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Generator
from typing import Any, cast

from faust.transport.consumer import CONSUMER_FETCHING
from faust.types import Message
from mode import Service, ServiceT

from pipeline.compat.bulk import bulk_topics


class _Resumed:
    """Awaiting this continues ``coro`` from where an inline step left it, waiting on
    ``yielded`` (what the coroutine gave the event loop to wait on) first."""

    def __init__(self, coro: Coroutine[Any, Any, Any], yielded: Any) -> None:
        self._coro = coro
        self._yielded = yielded

    def __await__(self) -> Generator[Any, Any, Any]:
        coro, yielded = self._coro, self._yielded
        while True:
            try:
                sent = yield yielded
            except BaseException as exc:  # a cancellation: the coroutine gets it
                try:
                    yielded = coro.throw(exc)
                except StopIteration as stop:
                    return stop.value
            else:
                try:
                    yielded = coro.send(sent)
                except StopIteration as stop:
                    return stop.value


async def _resume(coro: Coroutine[Any, Any, Any], yielded: Any) -> Any:
    return await _Resumed(coro, yielded)


async def deliver(
    callback: Coroutine[Any, Any, Any],
    suspended: asyncio.Event,
    wait_first: Callable[..., Awaitable[Any]],
) -> None:
    """Run ``callback`` inline; if it has to wait, wait for it as Faust does, abandoning it if
    the flow is suspended meanwhile."""
    if suspended.is_set():
        await wait_first(callback, suspended.wait())
        return
    try:
        yielded = callback.send(None)
    except StopIteration:
        return
    await wait_first(_resume(callback, yielded), suspended.wait())


async def drain_messages(self: Any, fetcher: ServiceT) -> None:  # pragma: no cover
    """faust-streaming 0.15.3's ``Consumer._drain_messages``; only the call of ``deliver``
    differs, and the records of a topic read in bulk are collected and handed over once per
    fetch (``compat/bulk.py``); the tracing comments are gone."""
    callback = self.callback
    getmany = self.getmany
    consumer_should_stop = cast(Service, self)._stopped.is_set
    fetcher_should_stop = cast(Service, fetcher)._stopped.is_set

    get_read_offset = self._read_offset.__getitem__
    set_read_offset = self._read_offset.__setitem__
    flag_consumer_fetching = CONSUMER_FETCHING
    set_flag = self.diag.set_flag
    unset_flag = self.diag.unset_flag
    commit_every = self._commit_every
    acks_enabled_for = self.app.topics.acks_enabled_for
    bulk = bulk_topics(self.app)

    yield_every = 100
    num_since_yield = 0
    sleep = asyncio.sleep

    try:
        while not (consumer_should_stop() or fetcher_should_stop()):
            set_flag(flag_consumer_fetching)
            ait = cast(AsyncIterator[tuple[Any, Message]], getmany(timeout=1.0))
            # Sleeping because sometimes getmany is called in a loop
            # never releasing to the event loop
            await self.sleep(0)
            if not self.should_stop:
                fetched: dict[str, list[Message]] = {}
                async for tp, message in ait:
                    num_since_yield += 1
                    if num_since_yield > yield_every:
                        await sleep(0)
                        num_since_yield = 0

                    offset = message.offset
                    r_offset = get_read_offset(tp)
                    if r_offset is None or offset >= r_offset:
                        gap = offset - (r_offset or 0)
                        # We have a gap in income messages
                        if gap > 1 and r_offset:
                            acks_enabled = acks_enabled_for(message.topic)
                            if acks_enabled:
                                await self._add_gap(tp, r_offset + 1, offset)
                        if commit_every is not None and self._n_acked >= commit_every:
                            self._n_acked = 0
                            await self.commit()
                        if message.topic in bulk:
                            fetched.setdefault(message.topic, []).append(message)
                        else:
                            await deliver(callback(message), self.suspend_flow, self.wait_first)
                        set_read_offset(tp, offset)
                    else:
                        self.log.dev(
                            "DROPPED MESSAGE ROFF %r: k=%r v=%r",
                            offset,
                            message.key,
                            message.value,
                        )
                for topic, messages in fetched.items():
                    handed = bulk[topic].hand_over(messages)
                    await deliver(handed, self.suspend_flow, self.wait_first)
                for each in bulk.values():
                    each.relieve()
                unset_flag(flag_consumer_fetching)

    except self.consumer_stopped_errors:
        if self.transport.app.should_stop:
            # we're already stopping so ignore
            self.log.info("Broker stopped consumer, shutting down...")
            return
        raise
    except asyncio.CancelledError:
        if self.transport.app.should_stop:
            # we're already stopping so ignore
            self.log.info("Consumer shutting down for user cancel.")
            return
        raise
    except Exception as exc:
        self.log.exception("Drain messages raised: %r", exc)
        raise
    finally:
        unset_flag(flag_consumer_fetching)

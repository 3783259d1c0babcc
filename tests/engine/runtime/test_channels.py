from __future__ import annotations

import anyio
import pytest

from streamlet.checkpoints.events import EndOfPartition
from streamlet.runtime.channels import Channel, InputGate, Notifier

pytestmark = pytest.mark.asyncio


def test_capacity_must_be_positive() -> None:
    with pytest.raises(ValueError, match=r"^channel capacity must be >= 1, got 0$"):
        Channel(0, Notifier())


def test_send_nowait_raises_would_block_when_full() -> None:
    channel = Channel(2, Notifier())
    channel.send_nowait([1])
    channel.send_nowait([2, 3])
    with pytest.raises(anyio.WouldBlock):
        channel.send_nowait([4])
    assert channel.receive_nowait() == [1]
    channel.send_nowait([4])
    assert [channel.receive_nowait(), channel.receive_nowait()] == [[2, 3], [4]]
    with pytest.raises(anyio.WouldBlock):
        channel.receive_nowait()


def test_statistics_count_records_and_peaks() -> None:
    channel = Channel(3, Notifier())
    channel.send_nowait([1, 2])
    channel.send_nowait(EndOfPartition())
    channel.send_nowait([3])
    stats = channel.statistics()
    assert (stats.buffers_queued, stats.records_queued, stats.records_sent) == (3, 3, 3)
    channel.receive_nowait()
    stats = channel.statistics()
    assert (stats.records_queued, stats.peak_records_queued, stats.peak_buffers_queued) == (
        1,
        3,
        3,
    )


async def test_full_channel_makes_the_producer_wait_until_the_consumer_takes() -> None:
    channel = Channel(1, Notifier())
    channel.send_nowait(["a"])
    sent = anyio.Event()

    async def producer() -> None:
        await channel.send(["b"])
        sent.set()

    async with anyio.create_task_group() as tg:
        tg.start_soon(producer)
        await anyio.wait_all_tasks_blocked()
        assert not sent.is_set()
        assert channel.receive_nowait() == ["a"]
        await sent.wait()
    assert channel.receive_nowait() == ["b"]


async def test_cancelled_send_appends_nothing() -> None:
    channel = Channel(1, Notifier())
    channel.send_nowait([1])
    with anyio.move_on_after(0.01):
        await channel.send([2])
    assert len(channel) == 1


async def test_gate_wakes_its_waiter_on_send() -> None:
    notifier = Notifier()
    channels = [Channel(2, notifier) for _ in range(3)]
    gate = InputGate(channels, notifier)
    got = []

    async def consumer() -> None:
        while (item := gate.poll()) is None:
            await notifier.wait()
        got.append(item)

    async with anyio.create_task_group() as tg:
        tg.start_soon(consumer)
        await anyio.wait_all_tasks_blocked()
        channels[2].send_nowait(["x"])
    assert got == [(2, ["x"])]


def test_gate_is_round_robin_over_ready_channels() -> None:
    notifier = Notifier()
    channels = [Channel(8, notifier) for _ in range(3)]
    gate = InputGate(channels, notifier)
    for index, channel in enumerate(channels):
        for n in range(3):
            channel.send_nowait([f"{index}.{n}"])
    order = [gate.poll()[0] for _ in range(9)]  # type: ignore[index]
    assert order == [0, 1, 2, 0, 1, 2, 0, 1, 2]
    assert gate.poll() is None


def test_blocked_channel_is_skipped_until_unblocked() -> None:
    notifier = Notifier()
    channels = [Channel(8, notifier) for _ in range(2)]
    gate = InputGate(channels, notifier)
    channels[0].send_nowait(["a"])
    channels[1].send_nowait(["b"])
    gate.block(0)
    assert gate.poll() == (1, ["b"])
    assert gate.poll() is None
    gate.unblock(0)
    assert gate.poll() == (0, ["a"])

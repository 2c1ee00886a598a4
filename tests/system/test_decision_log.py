"""``decisions.jsonl``: bounded by rotation (the file and one ``.1``), written off the
event loop by its own task, every decision written at a graceful stop, and readable in
order across a rotation."""

from __future__ import annotations

import asyncio
import os
import select
import threading
import time
from pathlib import Path

import aiohttp

from eventing.app.runtime import RuntimeSettings, start, stop
from eventing.app.system import StoreSettings
from eventing.workloads.decisionlog import FILE_NAME, DecisionLog, read_decisions, rotated
from tests.support.mesh import wait_until
from tests.support.process import EventingProcess, post_events
from tests.support.subscriber import RecordingSubscriber
from tests.system.test_workloads import KEY, manifests, reported, send


def record(n: int) -> dict[str, object]:
    return {"n": n, "workload": "default/w", "reason": "scale up 1 -> 2: " + "x" * 40}


async def test_the_file_rotates_at_its_bound_and_keeps_one_older_file(tmp_path: Path) -> None:
    path = tmp_path / FILE_NAME
    log = DecisionLog(path, max_bytes=1000)
    for n in range(200):
        log.append(record(n))
        if n % 7 == 0:  # batches of different sizes
            await log.flush()
    await log.close()
    assert sorted(os.listdir(tmp_path)) == [FILE_NAME, FILE_NAME + ".1"]
    assert path.stat().st_size <= 1000
    assert rotated(path).stat().st_size <= 1000
    numbers = [int(str(d["n"])) for d in read_decisions(path)]
    assert numbers == list(range(numbers[0], 200))  # the newest, in order, no gap
    assert numbers[0] > 0  # the oldest went with the rotations
    assert log.rotations > 1
    assert log.dropped == 0


async def test_a_reader_sees_an_ordered_run_of_decisions_across_rotations(
    tmp_path: Path,
) -> None:
    """What the CLI, tests and tools read (:func:`read_decisions`) while the writer
    rotates under them: always a run of consecutive decisions, oldest first."""
    path = tmp_path / FILE_NAME
    log = DecisionLog(path, max_bytes=600)
    done = threading.Event()
    seen: list[list[int]] = []

    def reader() -> None:
        while not done.is_set():
            seen.append([int(str(d["n"])) for d in read_decisions(path)])

    thread = threading.Thread(target=reader)
    thread.start()
    try:
        for n in range(400):
            log.append(record(n))
            await log.flush()
    finally:
        done.set()
        await asyncio.to_thread(thread.join, 30)
    assert log.rotations > 10
    for numbers in filter(None, seen):
        assert numbers == list(range(numbers[0], numbers[0] + len(numbers)))
    final = [int(str(d["n"])) for d in read_decisions(path)]
    assert final[-1] == 399


async def test_what_is_not_written_yet_is_written_at_close(tmp_path: Path) -> None:
    path = tmp_path / FILE_NAME
    log = DecisionLog(path)
    for n in range(50):
        log.append(record(n))
    assert not path.exists()  # appending touches no file: the writer does
    await log.close()
    assert [d["n"] for d in read_decisions(path)] == list(range(50))


async def test_when_the_writer_falls_behind_the_oldest_waiting_are_dropped(
    tmp_path: Path,
) -> None:
    path = tmp_path / FILE_NAME
    log = DecisionLog(path, max_pending=3)
    for n in range(5):
        log.append(record(n))
    assert log.dropped == 2
    await log.close()
    assert [d["n"] for d in read_decisions(path)] == [2, 3, 4]


async def test_a_failed_write_is_counted_and_the_next_one_tries_again(tmp_path: Path) -> None:
    path = tmp_path / FILE_NAME
    path.mkdir()  # opening it for append fails (IsADirectoryError)
    log = DecisionLog(path)
    log.append(record(0))
    await log.flush()
    assert log.dropped == 1
    path.rmdir()
    log.append(record(1))
    await log.close()
    assert [d["n"] for d in read_decisions(path)] == [1]


async def test_a_line_cut_short_by_a_crash_is_ended_and_skipped(tmp_path: Path) -> None:
    """``kill -9`` in the middle of a write leaves half a line: the next writer ends it
    before appending, and the reader skips it."""
    path = tmp_path / FILE_NAME
    path.write_bytes(b'{"n": 0}\n{"n": 1, "workl')
    log = DecisionLog(path)
    log.append(record(2))
    await log.close()
    assert [d["n"] for d in read_decisions(path)] == [0, 2]


async def test_a_stopped_system_has_written_every_decision_it_made(
    subscriber: RecordingSubscriber, tmp_path: Path
) -> None:
    """The running system (composition root: the writer task, the bounded flush in
    stop): every decision its scalers made is in the files after a graceful stop, and
    with a small bound (``decisions_max_bytes``) the files stay within it."""
    directory = tmp_path / "manifests"
    directory.mkdir()
    (directory / "system.yaml").write_text(manifests(f"{subscriber.url}/report", work=0.1))
    data = tmp_path / "data"
    settings = RuntimeSettings(
        port=0,
        admin_port=0,
        drain_timeout=5.0,
        store=StoreSettings(data_dir=data, decisions_max_bytes=700),
    )
    running = await start(directory, settings)
    made: list[tuple[int, int]] = []
    workloads = running.system.workloads
    assert workloads is not None
    workloads.listeners.append(lambda _key, d, previous: made.append((previous, d.replicas)))
    try:
        ids = [f"e-{i}" for i in range(12)]
        await send(running, ids)
        await subscriber.wait_for(lambda _: set(ids) <= set(reported(subscriber)), timeout=60)
        pool = workloads.items[KEY].pool
        await wait_until(lambda: pool.desired == 0 and not pool.replicas, 60, "scale to zero")
        # Lines the log had to drop are a metric, not only a warning in the log.
        registry = running.system.metrics.registry
        dropped = "eventing_decision_log_dropped_total"
        assert registry.get_sample_value(dropped) == 0.0
        workloads.decision_log.dropped += 2  # as the writer counts a failed batch
        assert registry.get_sample_value(dropped) == 2.0
        workloads.decision_log.dropped -= 2
    finally:
        await stop(running, settings)
    written = read_decisions(data / FILE_NAME)
    assert len(made) >= 2
    kept = [(int(str(d["from"])), int(str(d["to"]))) for d in written]
    assert kept == made[len(made) - len(kept) :]  # the newest, every one, in order
    assert made[-1][1] == 0  # the last one, scale to zero, included
    for path in (data / FILE_NAME, rotated(data / FILE_NAME)):
        assert not path.exists() or path.stat().st_size <= 700


async def test_a_stuck_decision_file_does_not_stop_the_event_loop(
    subscriber: RecordingSubscriber, tmp_path: Path
) -> None:
    """``eventing run`` whose ``decisions.jsonl`` is a FIFO nobody reads: opening it
    blocks until a reader comes. The first event activates the workload (a decision to
    write), and is delivered all the same: the file is written by a thread, not on the
    event loop. Once a reader opens the FIFO the line arrives. The next decision (back
    to zero) is stuck again with no reader: SIGTERM still stops the process cleanly,
    the stuck write given up after its deadline, not waited for at exit."""
    directory = tmp_path / "manifests"
    directory.mkdir()
    (directory / "system.yaml").write_text(manifests(f"{subscriber.url}/report", work=0.0))
    data = tmp_path / "data"
    data.mkdir(mode=0o700)
    fifo = data / FILE_NAME
    os.mkfifo(fifo)
    proc = EventingProcess(directory, data, "--no-admin-token", "--decisions-max-mb", "1")
    await proc.start()
    try:
        await post_events(proc.url(), ["first"], "job")
        # A blocked loop would deliver nothing; the deadline turns that into a failure.
        await subscriber.wait_for(lambda _: "first" in reported(subscriber), timeout=60)
        reader = await asyncio.to_thread(os.open, fifo, os.O_RDONLY | os.O_NONBLOCK)
        try:
            line = await asyncio.to_thread(_read_line, reader)
        finally:
            os.close(reader)
        assert b'"from": 0, "to": 1' in line
        async with aiohttp.ClientSession() as http:

            async def desired() -> int:
                async with http.get(f"{proc.admin_url}/v1/status") as r:
                    return int((await r.json())["workloads"][0]["desired"])

            deadline = time.monotonic() + 60
            while await desired() != 0:  # back to zero: that decision's write is stuck
                assert time.monotonic() < deadline, "the workload did not go back to zero"
                await asyncio.sleep(0.1)  # polling a condition (with a deadline)
    finally:
        code = await proc.terminate(60)
    assert code == 0, "\n".join(proc.output)
    assert any("not written within" in line for line in proc.output), proc.output


def _read_line(fd: int) -> bytes:
    """Read a non-blocking FIFO until a newline, waiting for data with poll (60 s at most)."""
    deadline = time.monotonic() + 60
    poller = select.poll()
    poller.register(fd, select.POLLIN)
    got = b""
    while b"\n" not in got:
        left = deadline - time.monotonic()
        if left <= 0 or not poller.poll(left * 1000):
            raise AssertionError(f"no decision line within 60 s (got {got!r})")
        got += os.read(fd, 4096)  # b"" after a hang-up without data: poll again
    return got

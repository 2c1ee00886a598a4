"""py-spy raw stacks of a Kafka-class run -> share and µs per event per part (not a test).

    .venv/bin/python bench/profile_parts.py DIR/main-1.txt --us 65 [--top 25]

``--us`` is the process's CPU µs per delivered event from the same round
(``bench/bench_kafka_cpu.py --profile DIR`` prints it). Samples whose innermost frame
is the event loop itself (``Runner.run``: epoll and uvloop's C code), a socket write
(``StreamWriter.write``, the pool's ``_write``, the fast path's ``_finish``) or an
idle executor thread are set apart first: py-spy counts a thread that waits for a CPU
as busy, and on a loaded 2-core machine threads wait most often right after a write
woke the reader on loopback (``perf record`` of the same processes puts only ~19 % of
their CPU in the kernel, py-spy 35-50 % in those frames). The rest is split into parts
by the patterns below, each given its share of the process's µs per event.
"""

from __future__ import annotations

import argparse
import collections
import sys
from pathlib import Path

WAITING = (
    "Runner.run (asyncio/runners.py",
    "StreamWriter.write (asyncio/streams.py",
    "_write (sinks/httpclient.py",
    "FastConnection._finish (eventing/ingress/fastpath.py",
)
IDLE_THREAD = "_worker (concurrent/futures/thread.py"

PARTS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("consume: _take (read_record, validate, tracker)",
     ("KafkaSubscription._take", "read_record", "_validate_new", "kafka/tracker.py")),
    ("consume: aiokafka fetcher + getmany", ("fetcher.py", "getmany")),
    ("consume: commits, group, lag",
     ("group_coordinator", "_commit", "read_lag", "end_offsets", "heartbeat")),
    ("consume: loop, flow, wake", ("KafkaSubscription.",)),
    ("delivery: dispatcher, HttpSink, pool",
     ("dispatcher.py", "sinks/", "pumps.py", "delivery/", "app/aging.py")),
    ("main: tap frames from workers (IPC in)", ("ingress/pool.py", "decode_tap", "ui/tap.py")),
    ("worker: tap frames out (IPC)",
     ("Tapped._tell", "_Channel.tell", "encode_tap", "Writer._flush", "Writer.send")),
    ("worker: HTTP parse + answer (fast path)", ("fastpath.py",)),
    ("worker: produce (Producing, Batches, to_record)",
     ("kafka/producing.py", "kafka/batches.py", "kafka/ingress.py", "to_record", "Tapped.")),
    ("aiokafka sender (produce requests)", ("sender.py", "message_accumulator.py", "producer.py")),
    ("aiokafka connection / protocol (other)", ("aiokafka/",)),
    ("eventing (other)", ("eventing/", "brokers/")),
)  # fmt: skip
"""A sample goes to the part of its innermost frame that matches one of the patterns
(frames of shared code, e.g. eventing/codec, match none: their caller decides); the
last two only when no other matches."""


def parse(path: Path) -> collections.Counter[str]:
    stacks: collections.Counter[str] = collections.Counter()
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if stack and count.isdigit():
            stacks[stack] += int(count)
    return stacks


def split(stacks: collections.Counter[str]) -> tuple[dict[str, int], dict[str, int]]:
    set_apart: collections.Counter[str] = collections.Counter()
    parts: collections.Counter[str] = collections.Counter()
    for stack, n in stacks.items():
        frames = stack.split(";")
        leaf = frames[-1]
        if any(IDLE_THREAD in f for f in frames):
            set_apart["idle executor thread"] += n
            continue
        waiting = next((w for w in WAITING if leaf.startswith(w)), None)
        if waiting is not None:
            set_apart[f"leaf {waiting.split(' ')[0]}"] += n
            continue
        parts[_part(frames)] += n
    return dict(set_apart), dict(parts)


def _part(frames: list[str]) -> str:
    for parts in (PARTS[:-2], PARTS[-2:]):  # the two catch-alls only when nothing else
        for frame in reversed(frames):
            for name, patterns in parts:
                if any(p in frame for p in patterns):
                    return name
    return "other"


def leaves(stacks: collections.Counter[str], top: int) -> list[tuple[str, int]]:
    out: collections.Counter[str] = collections.Counter()
    for stack, n in stacks.items():
        leaf = stack.split(";")[-1]
        if not any(leaf.startswith(w) for w in WAITING) and IDLE_THREAD not in stack:
            out[leaf.split(" (")[0] + " (" + leaf.split(" (")[-1].split(":")[0] + ")"] += n
    return out.most_common(top)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("file", type=Path)
    parser.add_argument("--us", type=float, required=True, help="CPU µs per event of it")
    parser.add_argument("--top", type=int, default=20)
    args = parser.parse_args()
    stacks = parse(args.file)
    total = sum(stacks.values())
    set_apart, parts = split(stacks)
    work = sum(parts.values())
    print(f"{args.file.name}: {total} samples; set apart {total - work}:")
    for name, n in sorted(set_apart.items(), key=lambda kv: -kv[1]):
        print(f"  {name:<52} {100 * n / total:5.1f} % of samples")
    print(f"the other {work} samples as {args.us:.1f} µs per event:")
    for name, n in sorted(parts.items(), key=lambda kv: -kv[1]):
        print(f"  {name:<52} {100 * n / work:5.1f} %  {args.us * n / work:6.1f} µs")
    print(f"innermost functions of those (top {args.top}):")
    for name, n in leaves(stacks, args.top):
        print(f"  {name:<70} {100 * n / work:5.1f} %")
    return 0


if __name__ == "__main__":
    sys.exit(main())

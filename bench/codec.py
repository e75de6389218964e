"""Micro-benchmark of the wire codecs: frames decoded and split per second.

Run: ``uv run python bench/codec.py``. Prints figures; asserts nothing about speed.
"""

from __future__ import annotations

import json
import random
import time

from mdp_core import decode_event_batch, decode_frame, encode_envelope, split_frame


def _frame(rng: random.Random, size: int) -> bytes:
    events = []
    for i in range(size):
        price = round(rng.uniform(1, 500), 2)
        if i % 2:
            events.append(
                {
                    "ev": "T",
                    "sym": f"S{i % 97}",
                    "x": 4,
                    "i": str(i),
                    "z": 3,
                    "p": price,
                    "s": rng.randint(1, 500),
                    "c": [12, 37],
                    "t": 1767000000000 + i,
                    "q": i,
                }
            )
        else:
            events.append(
                {
                    "ev": "A",
                    "sym": f"S{i % 97}",
                    "v": 200,
                    "av": 86420 + i,
                    "op": price,
                    "vw": price,
                    "o": price,
                    "c": price,
                    "h": price,
                    "l": price,
                    "a": price,
                    "z": 50,
                    "s": 1767000000000,
                    "e": 1767000001000,
                }
            )
    return json.dumps(events).encode()


def _rate(label: str, events: int, seconds: float) -> None:
    print(f"{label:<44} {events / seconds:>12,.0f} events/s")


def main() -> None:
    """Time each codec path over the same frames."""
    rng = random.Random(1)
    frames = [_frame(rng, 100) for _ in range(200)]
    total = 100 * len(frames)
    for _ in range(3):
        start = time.perf_counter()
        for frame in frames:
            decode_frame(frame)
        _rate("decode_frame (100-event frames -> models)", total, time.perf_counter() - start)

        start = time.perf_counter()
        splits = [split_frame(frame) for frame in frames]
        _rate("split_frame (route by ev, no decode)", total, time.perf_counter() - start)

        start = time.perf_counter()
        bodies = [
            encode_envelope(kind=kind, source="bench", batch="b", received_ns=1, events=raws)
            for split in splits
            for kind, raws in split.by_type.items()
        ]
        _rate("encode_envelope (raw slices)", total, time.perf_counter() - start)

        start = time.perf_counter()
        for body in bodies:
            decode_event_batch(body)
        _rate("decode_event_batch (envelope -> models)", total, time.perf_counter() - start)


if __name__ == "__main__":
    main()

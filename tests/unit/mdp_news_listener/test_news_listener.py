from __future__ import annotations

import random
from datetime import UTC, datetime
from typing import Any

import pytest
from finlight_client.models import Article, Company

from mdp_core.clock import ManualClock
from mdp_core.envelope import decode_news_batch
from mdp_core.settings import Secret, load
from mdp_core.telemetry import Metrics
from mdp_news_listener import FinlightListener, NewsListenerSettings, StreamOutcome
from mdp_queues import MemoryBus, MemoryConsumer, Topology
from mdp_runtime import AuthError
from mdp_runtime.stream import Interruption

NOW = datetime(2026, 11, 23, 15, 0, tzinfo=UTC)


def make(**overrides: Any) -> tuple[FinlightListener, MemoryBus, Metrics]:
    values: dict[str, Any] = {
        "api_key": Secret("k"),
        "backoff_initial_seconds": 1.0,
        "backoff_max_seconds": 4.0,
        "blocked_backoff_seconds": 300.0,
        "preempted_backoff_seconds": 120.0,
    }
    values.update(overrides)
    clock = ManualClock(NOW)
    bus = MemoryBus(Topology(), clock=clock)
    metrics = Metrics("news_listener")
    listener = FinlightListener(
        load(NewsListenerSettings, {}, **values),
        bus.publisher(),
        clock,
        metrics,
        rng=random.Random(3),
    )
    return listener, bus, metrics


def good_article(**changes: Any) -> Article:
    fields: dict[str, Any] = {
        "link": "https://x.example/1",
        "title": "Zeta beats",
        "publishDate": NOW,
        "source": "x.example",
        "language": "en",
        "companies": [Company(companyId=1, name="Zeta", ticker="ZZ")],
    }
    fields.update(changes)
    return Article(**fields)


async def test_an_article_becomes_a_news_envelope() -> None:
    listener, bus, metrics = make()
    await listener._publisher.start()
    listener._on_article(good_article())
    consumer = MemoryConsumer(bus)
    batch = await anext(consumer.consume_batches(bus.topology.news, max_wait_seconds=0))
    decoded = decode_news_batch(batch.messages[0].body)
    assert decoded.source == "finlight"
    assert [a.link for a in decoded.articles] == ["https://x.example/1"]
    assert decoded.articles[0].companies[0].ticker == "ZZ"
    assert metrics.counter("articles_out").total == 1


async def test_articles_we_cannot_use_are_counted_and_skipped() -> None:
    listener, bus, metrics = make()
    await listener._publisher.start()

    class Unencodable:
        def model_dump_json(self, **_: Any) -> str:
            raise ValueError("cannot serialise")

    listener._on_article(Unencodable())
    listener._on_article(good_article(title=""))  # fits the client, not our schema
    skipped = metrics.counter("articles_skipped").snapshot()
    assert skipped["total"] == 2
    assert skipped["reason=unencodable"] == 1
    assert metrics.counter("articles_out").total == 0
    assert bus.depth(bus.topology.news) == 0


def test_why_the_client_gave_up_decides_the_backoff() -> None:
    listener, _, _ = make()
    listener._last_close = (1008, "blocked")
    assert listener._why_it_gave_up() is StreamOutcome.BLOCKED
    listener._last_close = (1000, "Preempted by server")
    assert listener._why_it_gave_up() is StreamOutcome.PREEMPTED
    listener._last_close = None
    assert listener._why_it_gave_up() is StreamOutcome.GAVE_UP
    assert 210.0 <= listener._delay_after(StreamOutcome.BLOCKED) <= 300.0
    assert 84.0 <= listener._delay_after(StreamOutcome.PREEMPTED) <= 120.0
    ordinary = [listener._delay_after(StreamOutcome.ERROR) for _ in range(4)]
    for base, delay in zip((1.0, 2.0, 4.0, 4.0), ordinary, strict=True):
        assert base * 0.7 <= delay <= base
    assert listener._delay_after(Interruption.STOP) == 0.0
    listener._on_article(good_article())  # articles flow again: the backoff starts afresh
    assert 0.7 <= listener._delay_after(StreamOutcome.GAVE_UP) <= 1.0


def test_a_missing_key_is_an_auth_error() -> None:
    with pytest.raises(AuthError, match="Finlight API key"):
        make(api_key=None)

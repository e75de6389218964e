"""The chaos run's duplicate rule: what may explain more events applied than published."""

from __future__ import annotations

import pytest

from mdp_platform.chaos import ScenarioResult


@pytest.mark.parametrize(
    ("applied", "unconfirmed", "redelivered", "surplus"),
    [
        (1000, 0, 0, 0),  # every event once
        (1032, 0, 32, 0),  # a batch two consumers applied after a broker stop (seen in CI)
        (1023, 23, 0, 0),  # a batch whose confirm never came, delivered all the same
        (1055, 23, 32, 0),  # both at once
        (1033, 0, 32, 1),  # one event more than the redeliveries explain: a duplicate
        (1001, 0, 0, 1),  # a duplicate and nothing to explain it
        (990, 0, 32, -42),  # losses are the TTL rule's business, not this one's
    ],
)
def test_only_unconfirmed_and_redelivered_events_explain_a_surplus(
    applied: float, unconfirmed: float, redelivered: float, surplus: float
) -> None:
    result = ScenarioResult(
        "broker stop/start 3 s",
        published=1000,
        applied=applied,
        unconfirmed=unconfirmed,
        redelivered=redelivered,
    )
    assert result.unexplained_surplus == surplus

"""Partition owners by rendezvous hashing: everyone agrees, and churn moves little."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from mdp_cache.ownership import MemoryOwnership, assignment, fair_share, owner

names = st.lists(st.text("abcdefghij-0123456789", min_size=1, max_size=8), unique=True)


@given(members=names.filter(bool), partitions=st.integers(1, 64))
def test_every_partition_has_exactly_one_owner_among_the_members(
    members: list[str], partitions: int
) -> None:
    shares = [fair_share(m, members, partitions) for m in members]
    assert sorted(p for share in shares for p in share) == list(range(partitions))
    # The order members are listed in changes nothing: each computes the same from the set.
    assert [fair_share(m, list(reversed(members)), partitions) for m in members] == shares


@given(members=names.filter(bool), partitions=st.integers(1, 64))
def test_every_member_owns_its_fair_share_give_or_take_one(
    members: list[str], partitions: int
) -> None:
    loads = [len(fair_share(m, members, partitions)) for m in members]
    floor = partitions // len(members)
    assert all(load in (floor, floor + 1) for load in loads)
    assert sum(loads) == partitions


@given(members=st.integers(1, 6), partitions=st.sampled_from([4, 8, 16, 32, 64]))
def test_a_member_joining_moves_few_partitions(members: int, partitions: int) -> None:
    names_ = [f"w{n}" for n in range(members)]
    before = assignment(names_, partitions)
    after = assignment([*names_, "new"], partitions)
    moved = sum(1 for p in range(partitions) if before[p] != after[p])
    gained = sum(1 for m in after.values() if m == "new")
    assert gained == len(fair_share("new", [*names_, "new"], partitions))
    # Mostly the newcomer's share moves; capping may shuffle a few more (never all).
    assert moved <= 3 * gained


def test_no_members_means_no_owner() -> None:
    assert owner(0, [], 3) is None
    assert fair_share("a", ["a"], 3) == {0, 1, 2}


async def test_a_lease_is_held_by_one_member_until_released_or_expired() -> None:
    store = MemoryOwnership()
    assert await store.members("a", 1_000) == ["a"]
    assert await store.members("b", 1_000) == ["a", "b"]
    assert await store.hold([0, 1], "a", 1_000) == {0, 1}
    assert await store.hold([1, 2], "b", 1_000) == {2}
    await store.release([1], "b")  # not b's: nothing happens
    assert await store.hold([1], "b", 1_000) == set()
    await store.release([1], "a")
    assert await store.hold([1], "b", 1_000) == {1}
    store.expire("a")
    assert await store.members("", 1_000) == ["b"]
    assert await store.hold([0], "b", 1_000) == {0}

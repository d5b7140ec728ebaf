"""Reversible id schemes: ids.py."""

from __future__ import annotations

import random

import pytest

from kretain.simulator import ids


def test_entry_ids_round_trip_and_are_unique() -> None:
    seen = set()
    samples = [*range(1, 3000), ids.MAX_ENTRY_INDEX, *random.Random(1).sample(range(1, 10**9), 500)]
    for index in samples:
        eid = ids.entry_id(index)
        assert eid.startswith("0_") and len(eid) == 10
        assert ids.entry_index(eid) == index
        seen.add(eid)
    assert len(seen) == len(samples)


def test_asset_ids_round_trip() -> None:
    seen = set()
    for index in (1, 2, 999, 1_000_000, ids.MAX_ENTRY_INDEX):
        for ordinal in range(ids.ORDINALS_PER_ENTRY):
            aid = ids.asset_id(index, ordinal)
            assert aid.startswith("1_") and len(aid) == 10
            assert ids.asset_ref(aid) == (index, ordinal)
            seen.add(aid)
    assert len(seen) == 5 * 64


def test_scramble_is_a_bijection() -> None:
    for value in random.Random(2).sample(range(1 << 40), 2000):
        assert ids.unscramble(ids.scramble(value, 123), 123) == value


def test_foreign_ids_are_rejected() -> None:
    bad_ids = ("", "0_", "0_abc", "1_abcdefgh", "0_ABCDEFGH", "0_zzzzzzzz", "x_abcdefgh", "0_abc!")
    for bad in bad_ids:
        assert ids.entry_index(bad) is None
    assert ids.asset_ref(ids.entry_id(5)) is None
    assert ids.entry_index(ids.asset_id(5, 1)) is None
    with pytest.raises(ValueError):
        ids.entry_id(0)


def test_kind_ranges() -> None:
    assert [ids.kind_of(o) for o in (0, 15, 16, 31, 32, 47, 48, 63)] == [
        "flavor",
        "flavor",
        "caption",
        "caption",
        "attachment",
        "attachment",
        "thumb",
        "thumb",
    ]

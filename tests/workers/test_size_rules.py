"""size_entry: one entry's sizes from its wire assets (the rules themselves: test_rules.py)."""

from __future__ import annotations

import pytest

from kretain.errors import InvalidEntryData
from kretain.workers.size import size_entry


def _flavor(aid: str, entry: str, size: int, **kw) -> dict:
    return {"id": aid, "entryId": entry, "sizeInBytes": size, "size": -(-size // 1024), **kw}


def test_size_entry_actions_and_children() -> None:
    src = _flavor("1_src", "0_p", 1000, isOriginal=True, flavorParamsId=0, tags="source")
    web = _flavor("1_web", "0_p", 300, flavorParamsId=4)
    kb = {"id": "1_kb", "entryId": "0_p", "sizeInBytes": 0, "size": 2, "flavorParamsId": 5}
    cap = {"id": "1_cap", "entryId": "0_p", "sizeInBytes": 50, "language": "English"}
    child_src = _flavor("1_csrc", "0_c", 700, isOriginal=True, flavorParamsId=0)
    child_web = _flavor("1_cweb", "0_c", 70, flavorParamsId=4)
    by_owner = {
        "0_p": [("flavor", src), ("flavor", web), ("flavor", kb), ("caption", cap)],
        "0_c": [("flavor", child_src), ("flavor", child_web)],
    }
    whole = 1000 + 300 + 2048 + 50 + 700 + 70
    e = size_entry("0_p", "delete_entry", by_owner, ["0_c"])
    assert e.bytes_total == whole and e.bytes_saved == whole
    assert e.asset_count == 6
    sources = {a["id"] for a in e.assets if a["is_source"]}
    assert sources == {"1_src", "1_csrc"}
    owners = {a["id"]: a["owner_entry_id"] for a in e.assets}
    assert owners["1_cweb"] == "0_c" and owners["1_web"] is None
    f = size_entry("0_p", "delete_flavors", by_owner, ["0_c"])
    assert f.bytes_total == whole
    assert f.bytes_saved == 300 + 2048 + 70


def test_an_owner_without_a_recognisable_source_is_reported_and_frees_nothing() -> None:
    big = _flavor("1_big", "0_p", 10**9, flavorParamsId=3)
    small = _flavor("1_small", "0_p", 10, flavorParamsId=4)
    child_src = _flavor("1_csrc", "0_c", 700, isOriginal=True)
    by_owner = {"0_p": [("flavor", big), ("flavor", small)], "0_c": [("flavor", child_src)]}
    e = size_entry("0_p", "delete_flavors", by_owner, ["0_c"])
    assert e.unknown_sources == ("0_p",) and not e.source_known
    assert e.bytes_saved == 0  # the delete stage will refuse it: nothing is counted
    assert {a["id"] for a in e.assets if a["is_source"]} == {"1_csrc"}  # never "the largest"
    assert size_entry("0_p", "delete_entry", by_owner, ["0_c"]).bytes_saved == 10**9 + 710


def test_duplicate_asset_counted_once() -> None:
    a = _flavor("1_a", "0_p", 10, isOriginal=True)
    e = size_entry("0_p", "delete_entry", {"0_p": [("flavor", a), ("flavor", a)]})
    assert e.bytes_total == 10 and e.asset_count == 1


@pytest.mark.parametrize(
    "bad",
    [
        {"entryId": "0_p", "sizeInBytes": 1},  # no id
        {"id": "1_x", "entryId": "0_p", "sizeInBytes": "lots"},
        {"id": "1_x", "entryId": "0_p", "sizeInBytes": -5},
        {"id": "1_x", "entryId": "0_other", "sizeInBytes": 5},  # another entry's asset
        {"id": "../../etc", "entryId": "0_p", "sizeInBytes": 5},
    ],
)
def test_malformed_asset_fails_closed(bad: dict) -> None:
    with pytest.raises(InvalidEntryData):
        size_entry("0_p", "delete_entry", {"0_p": [("flavor", bad)]})


def test_no_action_is_refused() -> None:
    with pytest.raises(InvalidEntryData):
        size_entry("0_p", "keep", {})

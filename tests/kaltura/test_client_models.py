"""Coercion of wire values and defensive parsing of hostile data."""

from __future__ import annotations

import pytest

from kretain.kaltura.errors import InvalidResponse
from kretain.kaltura.models import (
    as_bool,
    as_int,
    as_opt_int,
    as_str,
    asset_bytes,
    is_source_flavor,
    parse_list_response,
)


def test_as_int() -> None:
    assert as_int(12) == 12
    assert as_int("12") == 12
    assert as_int(" -3 ") == -3
    assert as_int(7.0) == 7
    assert as_opt_int(None) is None
    for bad in [True, "1.5", "abc", 1.5, [], {}, "9" * 30]:
        with pytest.raises(InvalidResponse):
            as_int(bad, "f")


def test_as_bool_and_str() -> None:
    assert as_bool(True) and as_bool("1") and as_bool(1) and as_bool("true")
    assert not as_bool(False) and not as_bool("0") and not as_bool(0) and not as_bool("false")
    for bad in [2, "maybe", None, []]:
        with pytest.raises(InvalidResponse):
            as_bool(bad)
    assert as_str(2) == "2" and as_str("a") == "a"
    with pytest.raises(InvalidResponse):
        as_str(None)


def test_asset_bytes_prefers_exact_size() -> None:
    assert asset_bytes({"sizeInBytes": 1234567, "size": 1206}) == 1234567
    assert asset_bytes({"sizeInBytes": 0, "size": 1206}) == 1206 * 1024
    assert asset_bytes({"sizeInBytes": "0", "size": "10"}) == 10240
    assert asset_bytes({}) == 0
    with pytest.raises(InvalidResponse):
        asset_bytes({"sizeInBytes": "lots"})


def test_is_source_flavor() -> None:
    assert is_source_flavor({"isOriginal": True, "flavorParamsId": 0})
    assert is_source_flavor({"isOriginal": False, "flavorParamsId": 0})
    assert is_source_flavor({"isOriginal": "1", "flavorParamsId": 487041})
    assert not is_source_flavor({"isOriginal": False, "flavorParamsId": 487041})
    assert not is_source_flavor({"flavorParamsId": "487041"})
    with pytest.raises(InvalidResponse):
        is_source_flavor({"isOriginal": "perhaps"})


def test_parse_list_response() -> None:
    page = parse_list_response(
        {"objects": [{"id": "0_a"}, {"id": "0_b"}], "totalCount": "12345", "objectType": "X"}
    )
    assert [o["id"] for o in page.objects] == ["0_a", "0_b"]
    assert page.total_count == 12345
    assert parse_list_response({"totalCount": 0}).objects == []
    for bad in [
        [],
        "x",
        {"objects": {"id": "0_a"}, "totalCount": 1},
        {"objects": [["0_a"]], "totalCount": 1},
        {"objects": [{"name": "no id"}], "totalCount": 1},
        {"objects": [{"id": 5}], "totalCount": 1},
        {"objects": [], "totalCount": -1},
        {"objects": [], "totalCount": "many"},
    ]:
        with pytest.raises(InvalidResponse):
            parse_list_response(bad)

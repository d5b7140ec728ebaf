"""Defensive parsing of hostile API answers (the value rules are tested in test_rules.py)."""

from __future__ import annotations

import pytest

from kretain.kaltura.errors import InvalidResponse
from kretain.kaltura.models import as_int, parse_list_response


def test_as_int() -> None:
    assert as_int(12) == 12
    assert as_int("12") == 12
    assert as_int(" -3 ") == -3
    assert as_int(7.0) == 7
    for bad in [True, "1.5", "abc", 1.5, [], {}, "9" * 30, None]:
        with pytest.raises(InvalidResponse):
            as_int(bad, "f")


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

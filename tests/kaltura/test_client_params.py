"""Form flattening, body decoding and client-side argument checks (no network)."""

from __future__ import annotations

import enum

import pytest

from kretain.kaltura.client import ClientConfig, _id_list, _one_id, _pager
from kretain.kaltura.errors import InvalidResponse
from kretain.kaltura.transport import decode_body, flatten_params, multirequest_params


class Color(enum.Enum):
    RED = "r"


def test_flatten_nested_filter_and_pager() -> None:
    flat = flatten_params(
        {
            "filter": {
                "objectType": "KalturaMediaEntryFilter",
                "createdAtLessThanOrEqual": 1600000000,
                "statusIn": "2,-1",
                "userIdEqual": None,
                "advancedSearch": {"objectType": "KalturaQuizAdvancedFilter", "isQuiz": True},
            },
            "pager": {"pageSize": 500, "pageIndex": 1},
            "flag": False,
            "ratio": 1.5,
            "whole": 2.0,
            "color": Color.RED,
        }
    )
    assert flat == [
        ("filter:objectType", "KalturaMediaEntryFilter"),
        ("filter:createdAtLessThanOrEqual", "1600000000"),
        ("filter:statusIn", "2,-1"),
        ("filter:userIdEqual__null", ""),
        ("filter:advancedSearch:objectType", "KalturaQuizAdvancedFilter"),
        ("filter:advancedSearch:isQuiz", "1"),
        ("pager:pageSize", "500"),
        ("pager:pageIndex", "1"),
        ("flag", "0"),
        ("ratio", "1.5"),
        ("whole", "2"),
        ("color", "r"),
    ]


def test_flatten_lists() -> None:
    flat = flatten_params({"obj": {"items": [{"a": 1}, "x"]}, "empty": []})
    assert flat == [("obj:items:0:a", "1"), ("obj:items:1", "x"), ("empty:-", "")]


def test_flatten_rejects_unknown_types() -> None:
    with pytest.raises(TypeError):
        flatten_params({"x": object()})
    with pytest.raises(TypeError):
        flatten_params({"": "1"})


def test_multirequest_numbering_starts_at_one() -> None:
    flat = multirequest_params(
        [("media", "get", {"entryId": "0_a"}), ("flavorasset", "delete", None)]
    )
    assert flat == [
        ("1:service", "media"),
        ("1:action", "get"),
        ("1:entryId", "0_a"),
        ("2:service", "flavorasset"),
        ("2:action", "delete"),
    ]


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"   ",
        b"<html><body>502 Bad Gateway</body></html>",
        b'<?xml version="1.0"?><xml><result/></xml>',
        b'{"objects": [',
        b"\xff\xfe garbage",
        b"NaN",
        b'{"a": Infinity}',
        b"[" * 100_000 + b"]" * 100_000,
    ],
)
def test_decode_rejects_garbage(body: bytes) -> None:
    with pytest.raises(InvalidResponse):
        decode_body(body, "text/html")


def test_decode_accepts_json_values() -> None:
    assert decode_body(b"null") is None
    assert decode_body(b'"djJ8MTIz"') == "djJ8MTIz"
    assert decode_body(b'{"objects":[],"totalCount":0}') == {"objects": [], "totalCount": 0}


def test_ids_and_pager_validation() -> None:
    assert _one_id("0_abc12345") == "0_abc12345"
    for bad in ["", "0_a,0_b", "0_a b", "x" * 65, "{1:result}", "../x"]:
        with pytest.raises(ValueError):
            _one_id(bad)
    assert _id_list(["0_a", "0_b", "0_a"], 2) == "0_a,0_b"
    with pytest.raises(ValueError):
        _id_list([], 5)
    with pytest.raises(ValueError):
        _id_list(["0_a", "0_b"], 1)
    with pytest.raises(ValueError):
        _pager(1, 501)
    with pytest.raises(ValueError):
        _pager(0, 30)


def test_config_validation_and_repr_hides_secrets() -> None:
    cfg = ClientConfig("https://k.example", 123, admin_secret="topsecret-admin")
    assert "topsecret-admin" not in repr(cfg)
    assert "admin_secret='***'" in repr(cfg)
    tok = ClientConfig("https://k.example", 123, app_token_id="0_t", app_token="tok-value-xyz")
    assert "tok-value-xyz" not in repr(tok) and "0_t" in repr(tok)
    with pytest.raises(ValueError):
        ClientConfig("https://k.example", 1)  # no credentials
    with pytest.raises(ValueError):
        ClientConfig("https://k.example", 1, admin_secret="s", app_token_id="t", app_token="v")
    with pytest.raises(ValueError):
        ClientConfig("ftp://k.example", 1, admin_secret="s")
    with pytest.raises(ValueError):
        ClientConfig("https://k", 1, app_token_id="t", app_token="v", app_token_hash_type="CRC")

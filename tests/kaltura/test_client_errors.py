"""The code -> class table and parsing of KalturaAPIException bodies."""

from __future__ import annotations

import pickle

import pytest

from kretain.kaltura.errors import (
    ApiError,
    AssetNotReady,
    AuthenticationError,
    InvalidResponse,
    ListCapExceeded,
    NotFound,
    PermissionDenied,
    RateLimited,
    ServerError,
    api_error_from_wire,
    error_class_for,
)


@pytest.mark.parametrize(
    ("code", "cls"),
    [
        ("INVALID_KS", AuthenticationError),
        ("MISSING_KS", AuthenticationError),
        ("START_SESSION_ERROR", AuthenticationError),
        ("APP_TOKEN_ID_NOT_FOUND", AuthenticationError),
        ("APP_TOKEN_NOT_ACTIVE", AuthenticationError),
        ("APP_TOKEN_EXPIRED", AuthenticationError),
        ("INVALID_APP_TOKEN_HASH", AuthenticationError),
        ("SERVICE_FORBIDDEN", PermissionDenied),
        ("ENTRY_ID_NOT_FOUND", NotFound),
        ("FLAVOR_ASSET_ID_NOT_FOUND", NotFound),
        ("CAPTION_ASSET_ID_NOT_FOUND", NotFound),
        ("ATTACHMENT_ASSET_ID_NOT_FOUND", NotFound),
        ("THUMB_ASSET_ID_NOT_FOUND", NotFound),
        ("ACTION_BLOCKED", RateLimited),
        ("INTERNAL_SERVERL_ERROR", ServerError),
        ("INTERNAL_SERVER_ERROR", ServerError),
        ("INTERNAL_DATABASE_ERROR", ServerError),
        ("LOCK_TIMED_OUT", ServerError),
        ("QUERY_EXCEEDED_MAX_MATCHES_ALLOWED", ListCapExceeded),
        ("FLAVOR_ASSET_IS_NOT_READY", AssetNotReady),
        ("CAPTION_ASSET_IS_NOT_READY", AssetNotReady),
        ("PROPERTY_VALIDATION_CANNOT_BE_NULL", ApiError),
        ("CRITERIA EXCEEDED MAX MATCHES ALLOWED", ApiError),
    ],
)
def test_code_maps_to_class(code: str, cls: type) -> None:
    assert error_class_for(code) is cls
    err = api_error_from_wire({"code": code, "message": "m", "objectType": "KalturaAPIException"})
    assert type(err) is cls
    assert err.code == code


def test_wire_fields_and_empty_args_array() -> None:
    err = api_error_from_wire(
        {
            "code": "ENTRY_ID_NOT_FOUND",
            "message": 'Entry id "0_abc" not found',
            "objectType": "KalturaAPIException",
            "args": {"ENTRY_ID": "0_abc"},
        }
    )
    assert isinstance(err, NotFound)
    assert err.message == 'Entry id "0_abc" not found'
    assert err.api_args == {"ENTRY_ID": "0_abc"}
    assert str(err) == 'ENTRY_ID_NOT_FOUND: Entry id "0_abc" not found'
    empty = api_error_from_wire({"code": "LOCK_TIMED_OUT", "message": "x", "args": []})
    assert empty.api_args == {}


def test_hostile_exception_bodies() -> None:
    with pytest.raises(InvalidResponse):
        api_error_from_wire(["not", "an", "object"])
    with pytest.raises(InvalidResponse):
        api_error_from_wire({"objectType": "KalturaAPIException", "message": "no code"})
    with pytest.raises(InvalidResponse):
        api_error_from_wire({"code": 42})
    odd = api_error_from_wire({"code": "X", "message": 7, "args": {"A": 1, "B": None}})
    assert odd.message == "7"
    assert odd.api_args == {"A": "1", "B": "None"}


def test_errors_pickle_round_trip() -> None:
    err = RateLimited("ACTION_BLOCKED", "blocked", {"ACTION_NAME": "delete"})
    back = pickle.loads(pickle.dumps(err))
    assert type(back) is RateLimited
    assert (back.code, back.message, back.api_args) == (err.code, err.message, err.api_args)

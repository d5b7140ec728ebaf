"""API errors the simulator raises, shaped as Kaltura sends them.

Each constant mirrors the server's "CODE;ARG1,ARG2;message with @ARG1@" form,
so the wire layer can render ``code``, ``message`` and ``args`` exactly.
"""

from __future__ import annotations

from typing import Any

ERRORS: dict[str, tuple[tuple[str, ...], str]] = {
    "MISSING_KS": ((), "Missing KS, session not established"),
    "INVALID_KS": (
        ("KSID", "ERR_CODE", "ERR_DESC"),
        'Invalid KS "@KSID@", Error "@ERR_CODE@,@ERR_DESC@"',
    ),
    "SERVICE_FORBIDDEN": (("SERVICE",), "The access to service [@SERVICE@] is forbidden"),
    "START_SESSION_ERROR": (("PID",), "Error while starting session for partner [@PID@]"),
    "ENTRY_ID_NOT_FOUND": (("ENTRY_ID",), 'Entry id "@ENTRY_ID@" not found'),
    "FLAVOR_ASSET_ID_NOT_FOUND": (("ID",), 'Flavor asset id "@ID@" not found'),
    "CAPTION_ASSET_ID_NOT_FOUND": (("ID",), 'Caption asset id "@ID@" not found'),
    "ATTACHMENT_ASSET_ID_NOT_FOUND": (("ID",), 'Attachment asset id "@ID@" not found'),
    "THUMB_ASSET_ID_NOT_FOUND": (("ID",), 'Thumbnail asset id "@ID@" not found'),
    "FLAVOR_ASSET_IS_NOT_READY": ((), "The flavor asset is not ready"),
    "CAPTION_ASSET_IS_NOT_READY": (("ID",), 'Caption asset "@ID@" is not ready'),
    "ATTACHMENT_ASSET_IS_NOT_READY": (("ID",), 'Attachment asset "@ID@" is not ready'),
    "THUMB_ASSET_IS_NOT_READY": ((), "The thumbnail asset is not ready"),
    "PROPERTY_VALIDATION_CANNOT_BE_NULL": (
        ("PROP_NAME",),
        "The property @PROP_NAME@ cannot be null",
    ),
    "QUERY_EXCEEDED_MAX_MATCHES_ALLOWED": (
        (),
        "Unable to generate list. max matches value was reached",
    ),
    "ACTION_BLOCKED": (
        ("ACTION_NAME", "SERVICE_NAME"),
        'Action "@ACTION_NAME@" in service "@SERVICE_NAME@" is blocked',
    ),
    "MISSING_MANDATORY_PARAMETER": (
        ("PARAM_NAME",),
        "Missing parameter @PARAM_NAME@",
    ),
    "INVALID_ENUM_VALUE": (
        ("ENUM_VAL", "PARAM_NAME", "ENUM_TYPE"),
        "Invalid enumeration value [@ENUM_VAL@] for parameter [@PARAM_NAME@], "
        "expecting enumeration type [@ENUM_TYPE@]",
    ),
    "SERVICE_DOES_NOT_EXISTS": (("SERVICE",), "Service [@SERVICE@] does not exists"),
    "ACTION_DOES_NOT_EXISTS": (
        ("ACTION", "SERVICE"),
        "Action [@ACTION@] does not exists for service [@SERVICE@]",
    ),
    "INTERNAL_SERVERL_ERROR": ((), "Internal server error occurred"),
    "LOCK_TIMED_OUT": ((), "Lock timed out"),
    "APP_TOKEN_ID_NOT_FOUND": (("ID",), 'Application token id "@ID@" not found'),
    "APP_TOKEN_NOT_ACTIVE": (("ID",), 'Application token id "@ID@" is not active'),
    "APP_TOKEN_EXPIRED": (("ID",), 'Application token id "@ID@" expired'),
    "INVALID_APP_TOKEN_HASH": ((), "Invalid application token hash"),
    "FEATURE_RECYCLE_BIN_DISABLED": ((), "Recycle bin feature is disabled for this partner"),
    "INVALID_ENTRY_STATUS_FOR_RECYCLE": (
        ("ENTRY_ID",),
        'Entry "@ENTRY_ID@" cannot be recycled in its current status',
    ),
    "INVALID_ENTRY_STATUS_FOR_RESTORE": (
        ("ENTRY_ID",),
        'Entry "@ENTRY_ID@" is not recycled',
    ),
}


class SimApiError(Exception):
    """An API error to be answered as a KalturaAPIException (HTTP 200)."""

    def __init__(self, code: str, *values: Any) -> None:
        names, template = ERRORS.get(code, ((), code))
        self.code = code
        self.args_map: dict[str, str] = {
            name: str(value) for name, value in zip(names, values, strict=False)
        }
        message = template
        for name, value in self.args_map.items():
            message = message.replace(f"@{name}@", value)
        self.message = message
        super().__init__(f"{code}: {message}")

    def to_wire(self) -> dict[str, Any]:
        """The JSON form; args is [] (PHP's empty array) when there are none."""
        return {
            "code": self.code,
            "message": self.message,
            "objectType": "KalturaAPIException",
            "args": dict(self.args_map) if self.args_map else [],
        }

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
    "CAPTION_ASSET_ID_NOT_FOUND": (("ASSET_ID",), 'Caption asset id "@ASSET_ID@" not found'),
    "ATTACHMENT_ASSET_ID_NOT_FOUND": (
        ("ASSET_ID",),
        'Attachment asset id "@ASSET_ID@" not found',
    ),
    "THUMB_ASSET_ID_NOT_FOUND": (("ID",), 'The Thumbnail asset id "@ID@" not found'),
    "FLAVOR_ASSET_IS_NOT_READY": ((), "The flavor asset is not ready"),
    "CAPTION_ASSET_IS_NOT_READY": (("ASSET_ID",), 'Caption asset "@ASSET_ID@" is not ready'),
    "ATTACHMENT_ASSET_IS_NOT_READY": (
        ("ASSET_ID",),
        'Attachment asset "@ASSET_ID@" is not ready',
    ),
    "THUMB_ASSET_IS_NOT_READY": ((), "The thumbnail asset is not ready"),
    "PROPERTY_VALIDATION_CANNOT_BE_NULL": (
        ("PROP_NAME",),
        'The property "@PROP_NAME@" cannot be null',
    ),
    "PROPERTY_VALIDATION_NOT_UPDATABLE": (
        ("PROP_NAME",),
        'The property "@PROP_NAME@" cannot be updated',
    ),
    "PROPERTY_VALIDATION_MIN_LENGTH": (
        ("PROP_NAME", "MIN_LEN"),
        'The property "@PROP_NAME@" must have a min length of @MIN_LEN@ characters',
    ),
    "OBJECT_TYPE_ABSTRACT": (
        ("OBJ_TYPE",),
        'The object type "@OBJ_TYPE@" is abstract, use one of the object implementations',
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
        'Missing parameter "@PARAM_NAME@"',
    ),
    "INVALID_ENUM_VALUE": (
        ("ENUM_VAL", "PARAM_NAME", "ENUM_TYPE"),
        'Invalid enumeration value "@ENUM_VAL@" for parameter "@PARAM_NAME@", '
        'expecting enumeration type "@ENUM_TYPE@"',
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
    "FEATURE_RECYCLE_BIN_DISABLED": ((), "Feature recycle bin is disabled for partner"),
    "INVALID_ENTRY_STATUS_FOR_RECYCLE": ((), "The entry displayInStatus is invalid for recycle"),
    "INVALID_ENTRY_STATUS_FOR_RESTORE": (
        (),
        "Only entry in displayInStatus RECYCLED can be restored",
    ),
    # Entries and content (KalturaErrors, KalturaCaptionErrors).
    "ENTRY_ALREADY_WITH_CONTENT": ((), "Entry already associated with content"),
    "INVALID_ENTRY_STATUS": ((), "Invalid entry status"),
    "CATEGORY_NOT_FOUND": (("ID",), 'Category id "@ID@" not found'),
    "ASSIGNING_INFO_TO_ENTRY_WITH_PARENT_IS_FORBIDDEN": (
        ("ID",),
        "assigning categories|scheduling|access control to entry with parent entry"
        ' "@ID@" is not allowed',
    ),
    "ENTRY_DISPLAY_IN_SEARCH_VALUE_NOT_ALLOWED": (
        ("DISPLAY_IN_SEARCH_NEW_VALUE",),
        'Cannot set the value of DISPLAY_IN_SEARCH to ["@DISPLAY_IN_SEARCH_NEW_VALUE@"]',
    ),
    "RESOURCE_TYPE_NOT_SUPPORTED": (("RES_TYPE",), 'Resource type "@RES_TYPE@" not supported'),
    "FLAVOR_PARAMS_ID_NOT_FOUND": (("ID",), 'Flavor params id "@ID@" not found'),
    "ORIGINAL_FLAVOR_ASSET_IS_MISSING": ((), "The original flavor asset is missing"),
    "CAPTION_ASSET_ALREADY_EXISTS": (
        ("ASSET_ID", "PARAM_ID"),
        'Caption asset "@ASSET_ID@" already exists for params id "@PARAM_ID@"',
    ),
    "THUMB_ASSET_ALREADY_EXISTS": (
        ("ASSET_ID", "PARAMS_ID"),
        'Thumbnail asset id "@ASSET_ID@" already use thumbnail params id "@PARAMS_ID@"',
    ),
    # Uploads (UploadTokenService).
    "UPLOAD_ERROR": ((), "Upload failed"),
    "UPLOAD_TOKEN_NOT_FOUND": ((), "Upload token not found"),
    "UPLOAD_TOKEN_INVALID_STATUS_FOR_UPLOAD": (
        (),
        "Upload token is in an invalid status for uploading a file,"
        " maybe the file was already uploaded",
    ),
    "UPLOAD_TOKEN_CANNOT_RESUME": ((), "Cannot resume the upload, original file was not found"),
    "UPLOAD_TOKEN_CANNOT_MATCH_EXPECTED_SIZE": ((), "Failed to match expected file size"),
    "UPLOAD_TOKEN_MISSING_FILE_SIZE": ((), "FileSize is mandatory when enabling autoFinalize"),
    "UPLOAD_PASSED_MAX_RESUME_TIME_ALLOWED": (
        ("MAX_RESUME_TIME",),
        "Max resume time of @MAX_RESUME_TIME@ seconds reached, cannot resume upload",
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

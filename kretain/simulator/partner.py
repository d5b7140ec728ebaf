"""The simulated partner: its entries and assets, held in a SQLite file.

CONTRACT (shared by the HTTP layer in server.py/services.py and by tests).
The implementation replaces every ``raise NotImplementedError`` below; the
signatures and semantics are fixed so both halves can be built at once.

Values handed in and out are *wire-shaped*: dicts whose keys are Kaltura wire
names (``createdAt``, ``lastPlayedAt``, ``objectType`` ...), null fields left
out, core enums as ints, plugin enums as strings (``"externalMedia.externalMedia"``,
``"quiz.quiz"``). Filters arrive as the nested dict the wire layer parsed from
``filter:*`` params, values still strings (e.g. ``{"objectType":
"KalturaMediaEntryFilter", "createdAtGreaterThanOrEqual": "1600000000",
"statusIn": "2,-1,7"}``); relative times are NOT yet resolved (the store does
it, with ``now``).

Errors are raised as :class:`kretain.simulator.apierrors.SimApiError`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

AssetKind = Literal["flavor", "caption", "attachment", "thumb"]


@dataclass(frozen=True)
class PartnerSpec:
    """Everything that determines a synthetic partner. Same spec -> same data."""

    partner_id: int = 1_234_567
    admin_secret: str = "sim-admin-secret-0123456789abcdef"
    user_secret: str = "sim-user-secret-0123456789abcdef"
    entries: int = 2_000
    seed: int = 1
    # The partner's "now" when generating (Unix seconds). Entries span ~11 years
    # before it. Default: 2026-11-22T00:00:00Z.
    now: int = 1_795_305_600
    # Entries sharing ONE createdAt second (bulk-upload trap); 0 = none.
    burst: int = 0
    # Include hostile names / extensions / etc.
    traps: bool = True
    # Fraction of entries visible only with the disableentitlement privilege.
    entitled_fraction: float = 0.05
    # FEATURE_RECYCLE_BIN partner feature.
    recycle_bin: bool = False
    # App tokens: (id, token, hashType, sessionType|None, sessionPrivileges|None, status)
    app_tokens: tuple[tuple[str, str, str, int | None, str | None, int], ...] = field(
        default=(("0_apptok01", "app-token-secret-value", "SHA256", 2, "disableentitlement", 2),)
    )


class Partner:
    """One partner's data in a SQLite file; thread-safe for the server's use."""

    spec: PartnerSpec

    @classmethod
    def create(cls, spec: PartnerSpec, path: str | None = None) -> Partner:
        """Generate (or reopen a cached generation of) the partner.

        ``path`` None -> a temp file removed on close(). Must handle 1,000,000
        entries in bounded memory (streamed generation, batched inserts).
        """
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError

    # ---- entries -----------------------------------------------------------
    def list_entries(
        self,
        filter: Mapping[str, Any],
        pager: Mapping[str, Any],
        *,
        service: Literal["baseentry", "media"],
        entitled: bool,
        now: int,
    ) -> tuple[list[dict[str, Any]], int]:
        """baseEntry.list / media.list semantics -> (objects, totalCount).

        Defaults (status READY, moderation, displayInSearch, media filter typeIn),
        unknown fields/orderBy ignored, relative times, IN lists cut to 150,
        pager default 30 clamp 500, offset>=10000 -> QUERY_EXCEEDED_MAX_MATCHES_ALLOWED,
        true totalCount. ``entitled`` False hides entitlement-restricted entries.
        """
        raise NotImplementedError

    def get_entry(self, entry_id: str, *, entitled: bool = True) -> dict[str, Any]:
        """baseEntry.get; ENTRY_ID_NOT_FOUND for missing or deleted."""
        raise NotImplementedError

    def delete_entry(self, entry_id: str, *, media_only: bool) -> None:
        """baseEntry.delete (media_only False) / media.delete (type 1 only).

        Children cascade; assets marked deleted; repeat -> ENTRY_ID_NOT_FOUND.
        """
        raise NotImplementedError

    def recycle_entry(self, entry_id: str) -> dict[str, Any]:
        raise NotImplementedError

    def restore_recycled_entry(self, entry_id: str) -> dict[str, Any]:
        raise NotImplementedError

    # ---- assets ------------------------------------------------------------
    def list_assets(
        self, kind: AssetKind, filter: Mapping[str, Any], pager: Mapping[str, Any]
    ) -> tuple[list[dict[str, Any]], int]:
        """flavorAsset/caption/attachment/thumb list: entryIdEqual or entryIdIn
        mandatory (PROPERTY_VALIDATION_CANNOT_BE_NULL), deleted hidden, default
        page 30, exact totalCount."""
        raise NotImplementedError

    def get_asset(self, kind: AssetKind, asset_id: str) -> dict[str, Any]:
        """<X>_ASSET_ID_NOT_FOUND when missing or deleted."""
        raise NotImplementedError

    def delete_flavor(self, asset_id: str) -> None:
        """flavorAsset.delete: no source protection; repeat -> FLAVOR_ASSET_ID_NOT_FOUND."""
        raise NotImplementedError

    def asset_content(self, asset_id: str) -> tuple[int, int]:
        """(size_in_bytes_of_the_file, content_seed) for the serve endpoint."""
        raise NotImplementedError

    # ---- test hooks and ground truth --------------------------------------
    def set_last_played(self, entry_id: str, when: int, plays_delta: int = 1) -> None:
        """Simulate a play (tests: 'played during discovery')."""
        raise NotImplementedError

    def add_entries(self, count: int, *, created_at: int | None = None) -> list[str]:
        """Add new entries (a later run must discover them). Returns ids."""
        raise NotImplementedError

    def sql(self, query: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        """Read-only SQL over the ``entries`` table (ground truth for tests)."""
        raise NotImplementedError

    def assets_of(self, entry_id: str, *, include_deleted: bool = False) -> list[dict[str, Any]]:
        """Every asset (all kinds, wire-shaped, plus key ``kind``) of one entry."""
        raise NotImplementedError

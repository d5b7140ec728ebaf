"""Seeded generation of the synthetic partner's entries, and on-demand assets.

Entries are produced as rows for the ``entries`` table (see partner.py for the
column list). Assets are never stored: :func:`derive_assets` rebuilds them from
an entry's seed and shape columns, identically every time.
"""

from __future__ import annotations

import hashlib
import json
import math
import random
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, replace
from typing import TYPE_CHECKING, Any

from kretain.simulator import ids

if TYPE_CHECKING:
    from kretain.simulator.partner import PartnerSpec

GENERATOR_VERSION = 1
YEAR = 365 * 86_400
SPAN = 11 * YEAR

# Insert order of the generated columns (must match partner.ENTRY_COLUMNS' prefix).
ROW_COLUMNS: tuple[str, ...] = (
    "idx",
    "id",
    "partner_id",
    "name",
    "description",
    "user_id",
    "creator_id",
    "type",
    "media_type",
    "source_type",
    "status",
    "moderation_status",
    "display_in_search",
    "created_at",
    "updated_at",
    "last_played_at",
    "plays",
    "views",
    "duration",
    "ms_duration",
    "parent_entry_id",
    "root_entry_id",
    "capabilities",
    "categories",
    "categories_ids",
    "tags",
    "external_source_type",
    "entitled_only",
    "asset_seed",
    "n_flavors",
    "n_captions",
    "n_attachments",
    "n_thumbs",
    "asset_traps",
)

EXTERNAL_TYPE = "externalMedia.externalMedia"

_SUBJECTS = (
    "Biology",
    "Chemistry",
    "Physics",
    "History",
    "Economics",
    "Mathematics",
    "Nursing",
    "Law",
    "Philosophy",
    "Music",
    "Engineering",
    "Psychology",
    "Art History",
    "Linguistics",
    "Statistics",
    "Astronomy",
)
_KINDS = (
    "Lecture",
    "Week",
    "Lab demo",
    "Guest talk",
    "Office hours",
    "Review session",
    "Zoom recording",
    "Assignment feedback",
    "Orientation",
    "Seminar",
)
_TAGS = (
    "lecture",
    "zoom",
    "kaltura capture",
    "exam",
    "intro",
    "archive",
    "public",
    "research",
    "webinar",
    "student",
    "flipped",
    "accessibility",
)
_HOSTILE_NAMES = (
    "../../etc/passwd",
    "a/b/c lecture",
    "back\\slash\\name",
    "..",
    "ctrl\x01\x07chars\ttab\nnewline",
    "x" * 500,
    "Видео лекция по биологии",
    "講義ビデオ 第3回",
    "محاضرة الأسبوع",
    "emoji 🎓📹 recording",
    "CON",
    "   leading and trailing   ",
    'quote"s and <tags> & stuff',
    "",
)
_HOSTILE_EXTS = ("../../etc/passwd", "a/b", "", "mp4\x00", "e" * 300, "..", ".hidden", "a\\b")
_LANGS = (
    ("English", "en"),
    ("Spanish", "es"),
    ("French", "fr"),
    ("German", "de"),
    ("Chinese", "zh"),
    ("Arabic", "ar"),
    ("Hebrew", "he"),
    ("Japanese", "ja"),
)
# (flavorParamsId, width, height, bitrate kbit/s, tags)
_LADDER = (
    (487041, 640, 360, 900, "mobile,web,mbr,iphone,iphonenew"),
    (487051, 854, 480, 1300, "mobile,web,mbr,iphone,iphonenew"),
    (487061, 1280, 720, 2400, "mobile,web,mbr,iphone,iphonenew"),
    (487071, 1920, 1080, 4000, "web,mbr"),
    (487081, 426, 240, 400, "mobile,web,mbr,iphone"),
    (487091, 2560, 1440, 6000, "web,mbr"),
    (487111, 3840, 2160, 12000, "web"),
    (2, 320, 180, 250, "mobile"),
    (3, 640, 360, 750, "web"),
    (4, 854, 480, 1000, "web"),
    (5, 1280, 720, 2000, "web"),
)
_AUDIO_LADDER = ((359, 0, 0, 128, "audio,web"), (360, 0, 0, 64, "audio,mobile"))
SOURCE_FLAVOR_PARAMS_ID = 0
# The partner's flavor params: id -> (width, height, bitrate kbit/s, tags). Id 0 is the
# source ("source" tag): flavorAsset.convert never generates it.
FLAVOR_PARAMS: dict[int, tuple[int, int, int, str]] = {
    SOURCE_FLAVOR_PARAMS_ID: (0, 0, 0, "source"),
    **{fp: (w, h, br, tags) for fp, w, h, br, tags in (*_LADDER, *_AUDIO_LADDER)},
}
_SOURCE_EXTS = (
    ("mp4", "isom", "avc1"),
    ("mp4", "isom", "avc1"),
    ("mp4", "mp42", "hev1"),
    ("mov", "qt", "avc1"),
    ("mkv", "matroska", "avc1"),
    ("webm", "webm", "vp8"),
    ("avi", "avi", "mpeg4"),
    ("m4v", "isom", "avc1"),
)


def spec_hash(spec: PartnerSpec) -> str:
    """Stable hash of everything that shapes the generated data."""
    data = asdict(spec)
    # Secrets and app tokens do not shape the entries table.
    for key in (
        "admin_secret",
        "user_secret",
        "app_tokens",
        "recycle_bin",
        "recycle_retention_days",
    ):
        data.pop(key, None)
    data["generator_version"] = GENERATOR_VERSION
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()


def categories(spec: PartnerSpec) -> list[tuple[int, str]]:
    """The partner's category tree leaves: (id, full name)."""
    cats = [(1000 + i, f"MediaSpace>site>channels>{s}") for i, s in enumerate(_SUBJECTS)]
    cats += [(2000 + i, f"MediaSpace>site>galleries>{s}") for i, s in enumerate(_SUBJECTS[:8])]
    return cats


def owners(spec: PartnerSpec) -> list[str]:
    """~40 user ids: e-mail style, numeric and one with awkward characters."""
    rng = random.Random(spec.seed * 7919 + 1)
    first = ("anna", "ben", "chen", "dana", "eli", "farah", "gus", "hana", "ivan", "jo")
    last = ("smith", "garcia", "kim", "okafor", "levi", "nguyen", "rossi", "schmidt")
    users = sorted({f"{rng.choice(first)}.{rng.choice(last)}@univ.example.edu" for _ in range(60)})
    users = users[:34] + [str(100_000 + rng.randrange(900_000)) for _ in range(4)]
    users += ["admin", "Ünïcode User"]
    return users


class EntryGenerator:
    """Streams entry rows for indices ``start..start+count-1``, deterministically."""

    def __init__(self, spec: PartnerSpec, rng_seed: int | None = None) -> None:
        self.spec = spec
        self.rng = random.Random(spec.seed if rng_seed is None else rng_seed)
        self.cats = categories(spec)
        self.users = owners(spec)
        self.now = spec.now
        self.start_time = spec.now - SPAN
        n = max(spec.entries, 1)
        self.burst = min(spec.burst, spec.entries)
        # The entries spread over the time line, and the burst entries left out of it.
        self.spread, self.skipped = n, 0
        if spec.burst_at is None:
            self.burst_start = int(n * 0.6) + 1 if self.burst else 0
            self.burst_end = self.burst_start + self.burst
            self.burst_second = self._created_for(self.burst_start, 0.5)
        else:
            at = min(max(spec.burst_at, 0.0), 1.0)
            self.spread, self.skipped = max(n - self.burst, 1), self.burst
            # The time line is sqrt(index share), so the burst comes after at**2 of the others.
            self.burst_start = int(self.spread * at * at) + 1 if self.burst else 0
            self.burst_end = self.burst_start + self.burst
            self.burst_second = min(self.start_time + int(SPAN * at), spec.now - 60)

    def _created_for(self, index: int, jitter: float) -> int:
        if self.skipped and index >= self.burst_end:
            index -= self.skipped
        # sqrt: upload volume grows over the years (density rises towards now).
        frac = min(max(index - 1 + jitter, 0.0) / self.spread, 1.0)
        return min(self.start_time + int(SPAN * math.sqrt(frac)), self.spec.now - 60)

    def rows(
        self, start: int, count: int, *, created_at: int | None = None, plain: bool = False
    ) -> Iterator[tuple[Any, ...]]:
        """Rows for ``count`` entries starting at index ``start``.

        ``plain`` (used for entries added later): ordinary entries only, no
        multi-stream children. ``created_at`` forces their creation time.
        """
        end = start + count
        index = start
        while index < end:
            for row in self._entry(index, end, created_at, plain):
                yield row
                index += 1

    def _entry(
        self, index: int, end: int, forced_created: int | None, plain: bool
    ) -> list[tuple[Any, ...]]:
        spec = self.spec
        r = self.rng.random
        now = self.now
        eid = ids.entry_id(index)
        in_burst = not plain and self.burst_start <= index < self.burst_end

        if forced_created is not None:
            created = forced_created
        elif in_burst:
            created = self.burst_second
        else:
            created = self._created_for(index, r())
        horizon = max(now, created + 1)

        # ---- kind -------------------------------------------------------
        x = r()
        etype, media_type, source_type, ext_source = "1", 1, 1, None
        if in_burst:
            pass
        elif x < 0.003:
            etype, media_type, source_type = "7", 201, 32
        elif x < 0.008:
            etype, media_type, source_type = "6", None, None
        elif x < 0.011:
            etype, media_type, source_type = "5", None, None
        elif x < 0.031:
            etype, media_type, source_type, ext_source = EXTERNAL_TYPE, 1, None, "YouTube"
        else:
            y = r()
            media_type = 1 if y < 0.8 else (5 if y < 0.9 else 2)
            if r() < 0.03:
                source_type = 2  # webcam

        # ---- status / moderation -----------------------------------------
        status = 2
        if etype == "1" and not in_burst:
            s = r()
            if s < 0.03:
                status = -1
            elif s < 0.045:
                status = -2
            elif s < 0.075:
                status = 7
            elif s < 0.095:
                status = 4
            elif s < 0.11:
                status = 0
            elif s < 0.12:
                status = 1
        m = r()
        moderation = 2 if m < 0.6 or in_burst else 6 if m < 0.97 else 1 if m < 0.985 else 3
        if not in_burst and m >= 0.995:
            moderation = 5

        # ---- times and plays ----------------------------------------------
        if in_burst:
            updated = min(created + 1 + int(r() * max(2 * self.burst, 86_400)), horizon)
        else:
            updated = created + int((horizon - created) * r() ** 4)
        playable = etype in ("1", "7", EXTERNAL_TYPE) and status == 2
        last_played = None
        plays = views = 0
        never = 0.5 if media_type == 2 else 0.35
        if playable and not plain and r() >= never:
            if r() < 0.3:
                last_played = now - int(r() * 90 * 86_400)
            else:
                last_played = created + int((now - created) * r() ** 3)
            last_played = min(max(last_played, created), now - 1)
            plays = 1 + int(r() ** 3 * 500)
            views = plays + int(r() * plays * 2)
        elif playable and r() < 0.2:
            views = 1 + int(r() * 20)  # page views without a play

        if media_type == 1 and etype in ("1", EXTERNAL_TYPE):
            ms = 30_000 + int(r() ** 2 * 7_200_000)
        elif media_type == 5:
            ms = 60_000 + int(r() * 3_540_000)
        else:
            ms = 0
        duration = (ms + 500) // 1000

        # ---- descriptive ----------------------------------------------------
        subject = _SUBJECTS[int(r() * len(_SUBJECTS))]
        name = f"{subject} {101 + int(r() * 300)} - {_KINDS[int(r() * len(_KINDS))]} {index % 40}"
        if spec.traps and not in_burst and r() < 0.01:
            name = _HOSTILE_NAMES[int(r() * len(_HOSTILE_NAMES))]
        description = f"Recorded for {subject}." if r() < 0.4 else None
        user = self.users[int(r() ** 2 * len(self.users))]
        creator = user if r() < 0.9 else self.users[int(r() * len(self.users))]
        c = r()
        cat_list = [] if c < 0.3 else [self.cats[int(r() * len(self.cats))]]
        if c > 0.8:
            extra = self.cats[int(r() * len(self.cats))]
            if extra not in cat_list:
                cat_list.append(extra)
        cat_names = ",".join(n for _, n in cat_list) or None
        cat_ids = ",".join(str(i) for i, _ in cat_list) or None
        t = r()
        tag_list = (
            []
            if t < 0.25
            else sorted({_TAGS[int(r() * len(_TAGS))] for _ in range(1 + int(t * 3))})
        )
        tags = ",".join(tag_list) or None
        entitled_only = 1 if not in_burst and r() < spec.entitled_fraction else 0

        # ---- derived / clones / multi-stream ------------------------------
        root = eid
        capabilities = ""
        n_children = 0
        if etype == "1" and media_type == 1 and not in_burst and index > 10:
            q = r()
            if q < 0.02:
                capabilities = "quiz.quiz"
                root = ids.entry_id(max(1, index - 1 - int(r() * min(index - 1, 5000))))
            elif q < 0.035 and status == 2 and not plain:
                n_children = min(1 + int(r() * 3), end - index - 1)
                if self.burst and index < self.burst_start:
                    # children must not land inside the burst block
                    n_children = max(0, min(n_children, self.burst_start - index - 1))

        # ---- asset shape --------------------------------------------------
        seed = self.rng.getrandbits(62)
        n_f, n_c, n_a, n_t = self._asset_shape(etype, media_type, status)
        traps = 1 if spec.traps and (n_f + n_c + n_a + n_t) and r() < 0.02 else 0

        row = (
            index,
            eid,
            spec.partner_id,
            name,
            description,
            user,
            creator,
            etype,
            media_type,
            37 if n_children else source_type,
            status,
            moderation,
            1,
            created,
            updated,
            last_played,
            plays,
            views,
            duration,
            ms,
            None,
            root,
            capabilities,
            cat_names,
            cat_ids,
            tags,
            ext_source,
            entitled_only,
            seed,
            n_f,
            n_c,
            n_a,
            n_t,
            traps,
        )
        out = [row]
        for k in range(n_children):
            cidx = index + 1 + k
            cms = ms
            out.append(
                (
                    cidx,
                    ids.entry_id(cidx),
                    spec.partner_id,
                    f"{name} (stream {k + 2})",
                    None,
                    user,
                    creator,
                    "1",
                    1,
                    37,
                    2,
                    moderation,
                    -1,
                    created + 1 + k,
                    max(updated, created + 1 + k),
                    None,
                    0,
                    0,
                    (cms + 500) // 1000,
                    cms,
                    eid,
                    ids.entry_id(cidx),
                    "",
                    None,
                    None,
                    None,
                    None,
                    entitled_only,
                    self.rng.getrandbits(62),
                    1 + int(r() * 4),
                    0,
                    0,
                    1,
                    0,
                )
            )
        return out

    def _asset_shape(
        self, etype: str, media_type: int | None, status: int
    ) -> tuple[int, int, int, int]:
        r = self.rng.random
        if etype == EXTERNAL_TYPE:
            return 0, 0, 0, 1
        if etype != "1":
            return 0, 0, 0, (1 if r() < 0.5 else 0)
        if status == 7:
            return 0, 0, 0, (1 if r() < 0.3 else 0)
        if media_type == 2:
            return 1, 0, (1 if r() < 0.03 else 0), 1
        if media_type == 5:
            n_f = 1 + int(r() * 3) if status == 2 else 1
            return n_f, (1 if r() < 0.15 else 0), (1 if r() < 0.05 else 0), int(r() * 2)
        if status == 2:
            n_f = 1 + int(r() ** 1.5 * 12)
        elif status == -1:
            n_f = 1 + int(r() * 4)
        else:
            n_f = 1
        c = r()
        n_c = 0 if c < 0.55 or status != 2 else 1 + int((c - 0.55) / 0.45 * 4)
        n_a = 0 if r() < 0.9 else 1 + int(r() * 2)
        return n_f, n_c, n_a, 1 + int(r() * 3)


# ---------------------------------------------------------------------------
# Assets


@dataclass(frozen=True)
class Asset:
    """One asset: its wire dict (before overlay) and its file.

    Derived assets have generated content (``content_seed``, ``true_size`` bytes).
    Stored assets (added through the API) have ``num`` set, and either a file on
    disk (``content_path``) or generated content; ``content_seed`` is -1 when the
    asset has a file, and both are unset (-1 / 0) when it has no content yet.
    """

    ordinal: int
    kind: str
    wire: dict[str, Any]
    true_size: int
    content_seed: int
    content_path: str | None = None
    num: int | None = None


def capped(asset: Asset, cap: int) -> Asset:
    """The same asset with its file (and the sizes the API reports) at most ``cap`` bytes."""
    if asset.true_size <= cap:
        return asset
    wire = {**asset.wire, "size": _kb(cap)}
    if wire.get("sizeInBytes"):
        wire["sizeInBytes"] = cap
    return replace(asset, wire=wire, true_size=cap)


# Columns derive_assets needs, in this order.
SHAPE_COLUMNS: tuple[str, ...] = (
    "idx",
    "id",
    "partner_id",
    "type",
    "media_type",
    "status",
    "created_at",
    "updated_at",
    "duration",
    "asset_seed",
    "n_flavors",
    "n_captions",
    "n_attachments",
    "n_thumbs",
    "asset_traps",
)

_VIDEO_SIZE_MIN = 20 * 1024 * 1024
_VIDEO_SIZE_MAX = 2 * 1024**3


def _kb(size: int) -> int:
    return math.ceil(size / 1024)


def derive_assets(shape: Sequence[Any]) -> list[Asset]:
    """All assets of one entry, from its SHAPE_COLUMNS values, in ordinal order."""
    (
        idx,
        eid,
        pid,
        _etype,
        media_type,
        status,
        created,
        updated,
        duration,
        seed,
        n_f,
        n_c,
        n_a,
        n_t,
        traps,
    ) = shape
    rng = random.Random(seed)
    r = rng.random
    out: list[Asset] = []

    def times(ordinal: int) -> tuple[int, int]:
        c = min(created + 5 + ordinal * 37 + int(r() * 600), updated)
        return c, c + int((updated - c) * r())

    def base(ordinal: int, size: int, ext: str, tags: str, st: int) -> dict[str, Any]:
        c, u = times(ordinal)
        return {
            "id": ids.asset_id(idx, ordinal),
            "entryId": eid,
            "partnerId": pid,
            "version": 1,
            "size": _kb(size),
            "sizeInBytes": 0 if r() < 0.05 else size,
            "fileExt": ext,
            "tags": tags,
            "status": st,
            "createdAt": c,
            "updatedAt": u,
            "description": "",
        }

    # ---- flavors -----------------------------------------------------------
    dur = max(duration, 10)
    if n_f:
        if media_type == 2:
            src_size = 100_000 + int(r() ** 2 * 15_000_000)
            ext, container, codec = ("jpg", "jpeg", "") if r() < 0.7 else ("png", "png", "")
            width, height, bitrate, fps = 1920, 1080, 0, 0.0
        elif media_type == 5:
            src_size = 2_000_000 + int(r() ** 2 * 200_000_000)
            ext, container, codec = ("mp3", "mp3", "") if r() < 0.6 else ("m4a", "isom", "")
            width = height = 0
            bitrate, fps = 128 + int(r() * 192), 0.0
        else:
            if r() < 0.015:
                src_size = 2 * 1024**3 + int(r() * 6 * 1024**3)
            else:
                src_size = int(
                    _VIDEO_SIZE_MIN * (_VIDEO_SIZE_MAX / _VIDEO_SIZE_MIN) ** (r() ** 1.5)
                )
            ext, container, codec = _SOURCE_EXTS[int(r() * len(_SOURCE_EXTS))]
            width, height = (1920, 1080) if r() < 0.6 else (1280, 720)
            bitrate = max(1, src_size * 8 // 1000 // dur)
            fps = 30.0 if r() < 0.7 else 25.0
        src_status = {2: 2, -1: 2, -2: -1, 0: 0, 4: 7, 1: 0}.get(status, 2)
        wire = base(0, src_size, ext, "source" if r() < 0.5 else "source,web", src_status)
        wire.update(
            flavorParamsId=0,
            isOriginal=True,
            isWeb=ext in ("mp4", "mp3", "jpg", "png"),
            bitrate=bitrate,
            width=width,
            height=height,
            containerFormat=container,
            videoCodecId=codec,
            frameRate=fps,
            label="Source",
        )
        out.append(Asset(0, "flavor", wire, src_size, (seed * 64) & (2**62 - 1)))
        ladder = _AUDIO_LADDER if media_type == 5 else _LADDER
        for k in range(1, n_f):
            fp, w, h, br, tags = ladder[(k - 1) % len(ladder)]
            size = max(50_000, int(br * 125 * dur * (0.85 + 0.3 * r())))
            if status == 2:
                x = r()
                st = 2 if x < 0.96 else (-1 if x < 0.98 else 1)
            elif status == -1:
                st = -1
            else:
                st = 0
            wire = base(k, size, "mp3" if media_type == 5 else "mp4", tags, st)
            wire.update(
                flavorParamsId=fp,
                isOriginal=False,
                isWeb=True,
                bitrate=br,
                width=w,
                height=h,
                containerFormat="mp3" if media_type == 5 else "isom",
                videoCodecId="" if media_type == 5 else "avc1",
                frameRate=0.0 if media_type == 5 else fps,
            )
            out.append(Asset(k, "flavor", wire, size, (seed * 64 + k) & (2**62 - 1)))

    # ---- captions ------------------------------------------------------------
    first_lang = int(r() * len(_LANGS))
    for k in range(n_c):
        ordinal = 16 + k
        lang, code = _LANGS[(first_lang + k) % len(_LANGS)]
        vtt = r() < 0.4
        size = 5_000 + int(r() * 200_000)
        wire = base(ordinal, size, "vtt" if vtt else "srt", "", 0 if r() < 0.05 else 2)
        wire.update(
            language=lang,
            languageCode=code,
            label=lang,
            format="3" if vtt else "1",
            isDefault=k == 0,
        )
        out.append(Asset(ordinal, "caption", wire, size, (seed * 64 + ordinal) & (2**62 - 1)))

    # ---- attachments ---------------------------------------------------------
    for k in range(n_a):
        ordinal = 32 + k
        fname, fmt = (("slides.pdf", "3"), ("notes.txt", "1"), ("handout.docx", "3"))[int(r() * 3)]
        size = 10_000 + int(r() ** 2 * 20_000_000)
        wire = base(ordinal, size, fname.rsplit(".", 1)[1], "", 2)
        wire.update(filename=fname, title=fname.rsplit(".", 1)[0].title(), format=fmt)
        out.append(Asset(ordinal, "attachment", wire, size, (seed * 64 + ordinal) & (2**62 - 1)))

    # ---- thumbnails ----------------------------------------------------------
    for k in range(n_t):
        ordinal = 48 + k
        size = 10_000 + int(r() * 500_000)
        wire = base(ordinal, size, "jpg", "default_thumb" if k == 0 else "", 2)
        wire.update(thumbParamsId=0, width=640 if k else 1280, height=360 if k else 720)
        out.append(Asset(ordinal, "thumb", wire, size, (seed * 64 + ordinal) & (2**62 - 1)))

    if traps and out:
        victim = out[int(r() * len(out))]
        victim.wire["fileExt"] = _HOSTILE_EXTS[int(r() * len(_HOSTILE_EXTS))]
    return out


OBJECT_TYPES = {
    "1": "KalturaMediaEntry",
    "5": "KalturaPlaylist",
    "6": "KalturaDataEntry",
    "7": "KalturaLiveStreamEntry",
    EXTERNAL_TYPE: "KalturaExternalMediaEntry",
}
_PLAYABLE_TYPES = ("1", "7", EXTERNAL_TYPE)


def duration_type(duration: int) -> str:
    """Kaltura's durationType buckets (short < 4 min, medium < 20 min)."""
    if duration <= 0:
        return "notavailable"
    if duration < 240:
        return "short"
    if duration < 1200:
        return "medium"
    return "long"


def entry_wire(row: dict[str, Any]) -> dict[str, Any]:
    """Wire shape of one entries-table row (null fields left out)."""
    etype = row["type"]
    out: dict[str, Any] = {
        "id": row["id"],
        "name": row["name"],
        "description": row["description"],
        "partnerId": row["partner_id"],
        "userId": row["user_id"],
        "creatorId": row["creator_id"],
        "tags": row["tags"],
        "categories": row["categories"],
        "categoriesIds": row["categories_ids"],
        "status": row["status"],
        "moderationStatus": row["moderation_status"],
        "type": int(etype) if etype.lstrip("-").isdigit() else etype,
        "createdAt": row["created_at"],
        "updatedAt": row["updated_at"],
        "version": 100_000,
        "rootEntryId": row["root_entry_id"],
        "parentEntryId": row["parent_entry_id"],
        "capabilities": row["capabilities"],
        "displayInSearch": row["display_in_search"],
        "recycledAt": row["recycled_at"],
        "objectType": OBJECT_TYPES.get(etype, "KalturaBaseEntry"),
    }
    if etype in _PLAYABLE_TYPES:
        out.update(
            plays=row["plays"],
            views=row["views"],
            lastPlayedAt=row["last_played_at"],
            duration=row["duration"],
            msDuration=row["ms_duration"],
            durationType=duration_type(row["duration"]),
            mediaType=row["media_type"],
            sourceType=row["source_type"],
        )
    if etype == EXTERNAL_TYPE:
        out["externalSourceType"] = row["external_source_type"]
    return {k: v for k, v in out.items() if v is not None}

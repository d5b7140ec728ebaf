"""The archive layout: ``<root>/<partnerId>/<entryId>/`` holding one file per asset plus
``entry.json``. The same relative names are used on disk and as object keys under an S3
prefix. Pure code plus local file-system helpers, no network.

Every name that reaches the file system comes from the Kaltura API, which we do not trust:
ids are checked against Kaltura's id shape and anything else is encoded; extensions are
reduced to a short lowercase token; titles are never used. ``safe_join`` is the last guard:
it resolves the path (symlinks included) and refuses anything outside the root.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import tempfile
from pathlib import Path
from typing import Any, Literal

AssetKind = Literal["flavor", "caption", "attachment", "thumb"]
ASSET_KINDS: frozenset[str] = frozenset({"flavor", "caption", "attachment", "thumb"})

ENTRY_JSON = "entry.json"

# Kaltura object ids: partition digit, underscore, lowercase base-36 (e.g. "0_ab12cd34").
_KALTURA_ID = re.compile(r"[0-9]_[a-z0-9]{1,60}")
_EXTENSION = re.compile(r"[a-z0-9]{1,10}")
_READABLE = re.compile(r"[^a-z0-9_-]+")


class ArchivePathError(ValueError):
    """A path built from API data would leave the archive root (or is unusable)."""


def safe_component(value: str) -> str:
    """One path component for a Kaltura id: the id itself when it has Kaltura's shape,
    else ``~<readable part>-<hash>``.

    The ``~`` prefix never occurs in a valid id, so encoded names cannot collide with real
    ones; the hash keeps distinct bad values distinct (and bounded in length).
    """
    if not isinstance(value, str):
        raise ArchivePathError(f"id must be a string, got {type(value).__name__}")
    if _KALTURA_ID.fullmatch(value):
        return value
    digest = hashlib.sha256(value.encode("utf-8", "surrogatepass")).hexdigest()[:24]
    readable = _READABLE.sub("", value.lower())[:32]
    return f"~{readable}-{digest}"


def sanitize_extension(file_ext: str | None) -> str:
    """Lowercase ``[a-z0-9]{1,10}`` (a leading dot is tolerated), else ``"bin"``."""
    if not isinstance(file_ext, str):
        return "bin"
    ext = file_ext.strip().lower().removeprefix(".")
    return ext if _EXTENSION.fullmatch(ext) else "bin"


def safe_join(root: Path | str, *parts: str) -> Path:
    """Join ``parts`` under ``root`` and return the resolved path.

    Raises ArchivePathError for NUL bytes, absolute parts, or any result (after resolving
    ``..`` and existing symlinks) that is not inside the resolved root.
    """
    root_resolved = Path(root).resolve()
    for part in parts:
        if not isinstance(part, str) or "\x00" in part:
            raise ArchivePathError(f"unusable path component {part!r}")
        if os.path.isabs(part):
            raise ArchivePathError(f"absolute path component {part!r}")
    candidate = root_resolved.joinpath(*parts).resolve()
    if candidate != root_resolved and not candidate.is_relative_to(root_resolved):
        raise ArchivePathError(f"{candidate} is outside the archive root {root_resolved}")
    return candidate


def entry_dir(archive_root: Path, partner_id: int, entry_id: str) -> Path:
    """``<root>/<partnerId>/<entryId>/`` (not created). Refuses escapes from the root."""
    return safe_join(archive_root, *entry_rel(partner_id, entry_id).split("/"))


def entry_rel(partner_id: int, entry_id: str) -> str:
    """``<partnerId>/<entryId>``: an entry's place relative to any archive root or prefix."""
    if isinstance(partner_id, bool) or not isinstance(partner_id, int):
        raise ArchivePathError(f"partner id must be an int, got {partner_id!r}")
    return f"{partner_id}/{safe_component(entry_id)}"


def check_rel(rel_path: str) -> str:
    """``rel_path`` if it is a usable relative name (``a/b/c``): no empty, ``.`` or ``..``
    component, no leading ``/``, no NUL or backslash. Object stores take any key, so this is
    the guard that keeps keys inside the prefix (safe_join does the same on disk)."""
    if not isinstance(rel_path, str) or not rel_path:
        raise ArchivePathError(f"unusable relative path {rel_path!r}")
    if "\x00" in rel_path or "\\" in rel_path:
        raise ArchivePathError(f"unusable relative path {rel_path!r}")
    if any(part in ("", ".", "..") for part in rel_path.split("/")):
        raise ArchivePathError(f"unusable relative path {rel_path!r}")
    return rel_path


def rel_dir(rel_path: str) -> str:
    """The entry prefix a file's relative name is under (``1234/0_abc/flavor-0_x.mp4`` ->
    ``1234/0_abc``); "" for a name at the top."""
    return check_rel(rel_path).rpartition("/")[0]


def asset_filename(asset_id: str, file_ext: str | None, kind: AssetKind | str) -> str:
    """``<kind>-<assetId>.<ext>``, e.g. ``flavor-0_ab12cd34.mp4``.

    Built only from the asset id and a sanitised extension, never from titles. Caption
    languages live in entry.json (asset id -> language), so two English captions cannot
    collide as they did in the old script.
    """
    if kind not in ASSET_KINDS:
        raise ArchivePathError(f"unknown asset kind {kind!r}")
    return f"{kind}-{safe_component(asset_id)}.{sanitize_extension(file_ext)}"


def fsync_dir(path: Path) -> None:
    """fsync a directory so a rename inside it survives a crash."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def dump_json(doc: dict[str, Any]) -> bytes:
    """The bytes of a JSON document in the archive (the same on disk and in S3)."""
    text = json.dumps(doc, indent=2, sort_keys=True, ensure_ascii=False, default=str)
    return (text + "\n").encode("utf-8")


def load_json(data: bytes, where: str) -> dict[str, Any]:
    """Parse a JSON object written by :func:`dump_json`; ValueError names ``where``."""
    value = json.loads(data.decode("utf-8"))
    if not isinstance(value, dict):
        raise ValueError(f"{where} does not hold a JSON object")
    return value


def write_json_atomic(path: Path, doc: dict[str, Any]) -> Path:
    """Write ``path`` atomically: temp file, fsync, rename, fsync the directory.

    A reader sees either the old file or the new one, never a torn write. The document is
    serialised before anything is touched, so a value that cannot be written leaves no trace.
    """
    data = dump_json(doc)
    directory = path.parent
    directory.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp_name, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp_name)
        raise
    fsync_dir(directory)
    return path


def read_entry_json(directory: Path) -> dict[str, Any]:
    """The entry.json a local archive holds in ``directory`` (for looking at one by hand;
    the workers read it through their ArchiveTarget's ``get_json``)."""
    path = directory / ENTRY_JSON
    return load_json(path.read_bytes(), str(path))


def free_bytes(path: Path | str) -> int:
    """Bytes available to this (unprivileged) user on the file system holding ``path``.

    ``path`` may not exist yet (an entry directory about to be made): the nearest existing
    ancestor is measured.
    """
    p = Path(path)
    while not p.exists() and p != p.parent:
        p = p.parent
    st = os.statvfs(p)
    return st.f_bavail * st.f_frsize

"""kretain.archive: layout, hostile names, atomic entry.json (real files in tmp_path)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from kretain import archive
from kretain.archive import (
    ArchivePathError,
    asset_filename,
    entry_dir,
    free_bytes,
    read_entry_json,
    safe_join,
    sanitize_extension,
    write_json_atomic,
)

HOSTILE = [
    "../../etc/passwd",
    "a/b",
    "",
    "mp4\x00",
    "..",
    ".",
    "x" * 300,
    "ünïcødé/../..",
    "/etc/passwd",
    "0_abc/../../x",
    "0_ABC",  # upper case is not Kaltura's id shape
    "~",
    "\\..\\..\\windows",
]


def _inside(root: Path, path: Path) -> bool:
    return path.resolve().is_relative_to(root.resolve())


def test_valid_ids_are_used_verbatim(tmp_path: Path) -> None:
    d = entry_dir(tmp_path, 1234567, "0_ab12cd34")
    assert d == tmp_path.resolve() / "1234567" / "0_ab12cd34"
    assert asset_filename("1_zz99", "MP4", "flavor") == "flavor-1_zz99.mp4"
    assert asset_filename("1_zz99", ".srt", "caption") == "caption-1_zz99.srt"


@pytest.mark.parametrize("bad", HOSTILE)
def test_hostile_entry_ids_stay_inside_root(tmp_path: Path, bad: str) -> None:
    d = entry_dir(tmp_path, 42, bad)
    assert _inside(tmp_path, d)
    assert d.parent == tmp_path.resolve() / "42"
    assert d.name.startswith("~")
    assert len(d.name.encode()) < 100
    # The directory can really be made and written to.
    d.mkdir(parents=True)
    (d / "probe").write_bytes(b"x")
    assert (tmp_path / "42" / d.name / "probe").exists()


@pytest.mark.parametrize("bad", HOSTILE)
def test_hostile_asset_ids_and_extensions_stay_inside_root(tmp_path: Path, bad: str) -> None:
    name = asset_filename(bad, bad, "caption")
    assert "/" not in name and "\x00" not in name and name not in (".", "..")
    assert name.endswith(".bin")  # every hostile extension becomes "bin"
    path = safe_join(entry_dir(tmp_path, 7, "0_ok"), name)
    assert _inside(tmp_path, path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"ok")
    assert path.read_bytes() == b"ok"


def test_distinct_bad_ids_do_not_collide(tmp_path: Path) -> None:
    names = {entry_dir(tmp_path, 1, bad).name for bad in HOSTILE}
    assert len(names) == len(HOSTILE)
    assert entry_dir(tmp_path, 1, "a/b") != entry_dir(tmp_path, 1, "ab")


@pytest.mark.parametrize(
    ("ext", "expected"),
    [
        ("mp4", "mp4"),
        ("MOV", "mov"),
        (".vtt", "vtt"),
        (None, "bin"),
        ("", "bin"),
        ("mp4\x00", "bin"),
        ("../x", "bin"),
        ("a" * 11, "bin"),
        ("a" * 10, "a" * 10),
        ("tar.gz", "bin"),
        ("ｍｐ４", "bin"),  # fullwidth letters are not [a-z0-9]
        (12, "bin"),
    ],
)
def test_sanitize_extension(ext: object, expected: str) -> None:
    assert sanitize_extension(ext) == expected  # type: ignore[arg-type]


def test_unknown_kind_and_bad_partner_refused(tmp_path: Path) -> None:
    with pytest.raises(ArchivePathError):
        asset_filename("0_a", "mp4", "../flavor")
    with pytest.raises(ArchivePathError):
        entry_dir(tmp_path, "1/../..", "0_a")  # type: ignore[arg-type]
    with pytest.raises(ArchivePathError):
        entry_dir(tmp_path, True, "0_a")  # type: ignore[arg-type]


@pytest.mark.parametrize("parts", [("..",), ("a", "..", ".."), ("/etc",), ("a\x00",)])
def test_safe_join_refuses_escapes(tmp_path: Path, parts: tuple[str, ...]) -> None:
    root = tmp_path / "root"
    root.mkdir()
    with pytest.raises(ArchivePathError):
        safe_join(root, *parts)


def test_safe_join_refuses_symlink_out_of_root(tmp_path: Path) -> None:
    root = tmp_path / "root"
    outside = tmp_path / "outside"
    root.mkdir()
    outside.mkdir()
    (root / "1").symlink_to(outside, target_is_directory=True)
    with pytest.raises(ArchivePathError):
        safe_join(root, "1", "0_abc")
    with pytest.raises(ArchivePathError):
        entry_dir(root, 1, "0_abc")
    # A symlink that stays inside the root is fine.
    (root / "real").mkdir()
    (root / "2").symlink_to(root / "real", target_is_directory=True)
    assert safe_join(root, "2", "x") == (root / "real" / "x").resolve()


def test_safe_join_allows_root_itself_and_children(tmp_path: Path) -> None:
    assert safe_join(tmp_path) == tmp_path.resolve()
    assert safe_join(tmp_path, "a", "b") == tmp_path.resolve() / "a" / "b"


def test_write_entry_json_atomic_and_replaces(tmp_path: Path) -> None:
    d = tmp_path / "1" / "0_abc"
    meta = {"id": "0_abc", "name": "Ünïcode title", "assets": {"0_cap1": "English"}}
    path = write_json_atomic(d / "entry.json", meta)
    assert path == d / "entry.json"
    assert json.loads(path.read_text(encoding="utf-8")) == meta
    assert read_entry_json(d) == meta
    write_json_atomic(d / "entry.json", {"id": "0_abc", "v": 2})
    assert read_entry_json(d) == {"id": "0_abc", "v": 2}
    assert sorted(os.listdir(d)) == ["entry.json"]  # no temp files left behind


def test_write_entry_json_failure_leaves_old_file(tmp_path: Path) -> None:
    write_json_atomic(tmp_path / "entry.json", {"v": 1})
    with pytest.raises(ValueError):
        write_json_atomic(
            tmp_path / "entry.json", {"v": float("nan"), "bad": object.__new__(_Unserializable)}
        )
    assert read_entry_json(tmp_path) == {"v": 1}
    assert sorted(os.listdir(tmp_path)) == ["entry.json"]


class _Unserializable:
    def __str__(self) -> str:
        raise ValueError("cannot render")


def test_free_bytes(tmp_path: Path) -> None:
    st = os.statvfs(tmp_path)
    assert free_bytes(tmp_path) == st.f_bavail * st.f_frsize
    # A not-yet-created directory measures its nearest existing ancestor.
    assert abs(free_bytes(tmp_path / "no" / "such" / "dir") - free_bytes(tmp_path)) < 64 << 20
    assert archive.free_bytes(str(tmp_path)) > 0

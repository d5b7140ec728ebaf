"""The S3 settings: KRETAIN_S3_ENDPOINT_URL, KRETAIN_S3_REGION, and s3:// archives."""

from __future__ import annotations

from pathlib import Path

import pytest

from kretain.archive import LocalTarget, open_target
from kretain.archive.s3 import S3Target
from kretain.config import ENV_NAMES, load_settings, render_default_toml
from kretain.errors import ConfigError


def write_toml(directory: Path, text: str) -> Path:
    path = directory / "kretain.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_defaults_are_aws_and_a_local_archive(tmp_path: Path) -> None:
    s = load_settings({}, {}, tmp_path, None)
    assert s.s3_endpoint_url is None and s.s3_region is None
    assert s.archive == tmp_path / "kretain-archive"
    assert ENV_NAMES["s3_endpoint_url"] == "KRETAIN_S3_ENDPOINT_URL"
    assert ENV_NAMES["s3_region"] == "KRETAIN_S3_REGION"


def test_precedence_flags_env_toml(tmp_path: Path) -> None:
    write_toml(
        tmp_path,
        '[kretain]\narchive = "s3://toml-bucket/a/b/"\n'
        's3_endpoint_url = "https://toml.example/"\ns3_region = "eu-west-1"\n',
    )
    s = load_settings({}, {}, tmp_path, None)
    assert s.archive == "s3://toml-bucket/a/b"  # kept as a URI, not made a path
    assert (s.s3_endpoint_url, s.s3_region) == ("https://toml.example", "eu-west-1")
    env = {"KRETAIN_S3_ENDPOINT_URL": "http://127.0.0.1:8333", "KRETAIN_S3_REGION": "garage"}
    s = load_settings({"s3_region": "us-east-2"}, env, tmp_path, None)
    assert (s.s3_endpoint_url, s.s3_region) == ("http://127.0.0.1:8333", "us-east-2")
    assert s.sources["s3_endpoint_url"] == "KRETAIN_S3_ENDPOINT_URL"
    assert s.sources["s3_region"] == "--s3-region"
    target = open_target(s.archive, endpoint_url=s.s3_endpoint_url, region=s.s3_region)
    assert isinstance(target, S3Target) and target.uri == "s3://toml-bucket/a/b"
    assert target.endpoint_url == "http://127.0.0.1:8333" and target.region == "us-east-2"


def test_archive_paths_stay_paths(tmp_path: Path) -> None:
    s = load_settings({}, {"KRETAIN_ARCHIVE": "backups/s3-like-name"}, tmp_path, None)
    assert s.archive == tmp_path / "backups" / "s3-like-name"
    assert isinstance(open_target(s.archive), LocalTarget)
    with pytest.raises(ConfigError, match="--archive: not a valid S3 bucket name"):
        load_settings({"archive": "S3://Bucket-Upper/x"}, {}, tmp_path, None)


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("KRETAIN_S3_ENDPOINT_URL", "ftp://host", r"must be an http\(s\) URL"),
        ("KRETAIN_S3_ENDPOINT_URL", "https://key:secret@host", "must not contain credentials"),
        ("KRETAIN_S3_ENDPOINT_URL", "https://host/x?secret=1", r"must be an http\(s\) URL"),
        ("KRETAIN_S3_REGION", "eu west", "must be a region name"),
        ("KRETAIN_ARCHIVE", "s3://", "KRETAIN_ARCHIVE: not a valid S3 bucket name"),
        ("KRETAIN_ARCHIVE", "s3://Not_A_Bucket/x", "not a valid S3 bucket name"),
        ("KRETAIN_ARCHIVE", "s3://key:secret@bucket/x", "not an archive URI"),
    ],
)
def test_bad_values_name_the_setting(tmp_path: Path, name: str, value: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message) as info:
        load_settings({}, {name: value}, tmp_path, None)
    assert name in str(info.value) and "secret" not in str(info.value)


def test_default_toml_documents_the_settings_and_still_loads(tmp_path: Path) -> None:
    text = render_default_toml()
    assert "KRETAIN_S3_ENDPOINT_URL" in text and "KRETAIN_S3_REGION" in text
    write_toml(tmp_path, text)
    s = load_settings({}, {}, tmp_path, None)
    assert s.s3_endpoint_url is None and s.s3_region is None

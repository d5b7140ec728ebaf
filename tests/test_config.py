"""Settings: precedence flags > env > kretain.toml > defaults; credentials; no secret in repr."""

from __future__ import annotations

import tomllib
from datetime import date
from pathlib import Path

import pytest

from kretain.config import (
    DEFAULT_SERVICE_URL,
    STDOUT,
    Settings,
    load_settings,
    read_entry_ids,
    render_default_toml,
)
from kretain.errors import ConfigError
from kretain.policy import Policy

SECRET = "s3cret-admin-0123456789abcdef"
TOKEN = "app-token-value-9876543210"


def write_toml(directory: Path, text: str, name: str = "kretain.toml") -> Path:
    path = directory / name
    path.write_text(text, encoding="utf-8")
    return path


def test_defaults(tmp_path: Path) -> None:
    s = load_settings({}, {}, tmp_path, None)
    assert s.service_url == DEFAULT_SERVICE_URL
    assert s.db == tmp_path / "kretain.db" and s.archive == tmp_path / "kretain-archive"
    assert (s.partner_id, s.admin_secret, s.concurrency, s.requests_per_second) == (
        None, None, 8, None,
    )  # fmt: skip
    assert s.as_of <= date.today() or (s.as_of - date.today()).days <= 1  # UTC vs local
    assert s.policy == Policy.default() and s.config_file is None and s.sources == {}


def test_precedence_flags_over_env_over_toml_over_defaults(tmp_path: Path) -> None:
    write_toml(
        tmp_path,
        '[kaltura]\npartner_id = 111\nservice_url = "https://toml.example"\n'
        'user_id = "toml-user"\n'
        '[kretain]\ndb = "toml.db"\nconcurrency = 3\nas_of = 2025-01-01\n'
        'archive = "toml-archive"\n',
    )
    env = {"KALTURA_PARTNER_ID": "222", "KRETAIN_DB": "env.db", "KRETAIN_CONCURRENCY": "4"}
    flags = {"partner_id": 333, "concurrency": None}  # None = flag not given
    s = load_settings(flags, env, tmp_path, None)
    assert s.partner_id == 333  # flag
    assert s.db == tmp_path / "env.db"  # env beats toml
    assert s.concurrency == 4  # env (flag was None)
    assert s.service_url == "https://toml.example" and s.user_id == "toml-user"  # toml
    assert s.as_of == date(2025, 1, 1) and s.archive == tmp_path / "toml-archive"
    assert s.requests_per_second is None  # default
    assert s.sources["partner_id"] == "--partner-id"
    assert s.sources["db"] == "KRETAIN_DB"
    assert s.sources["service_url"].startswith("kaltura.service_url in ")
    assert s.config_file == tmp_path / "kretain.toml"


def test_explicit_config_path_and_relative_paths(tmp_path: Path) -> None:
    conf_dir = tmp_path / "conf"
    conf_dir.mkdir()
    path = write_toml(conf_dir, '[kretain]\ndb = "state/k.db"\n', name="other.toml")
    s = load_settings({}, {}, tmp_path, path)
    assert s.db == conf_dir / "state" / "k.db"  # relative to the config file
    s = load_settings({"db": "flag.db"}, {}, tmp_path, path)
    assert s.db == tmp_path / "flag.db"  # relative to cwd
    with pytest.raises(ConfigError, match="does not exist"):
        load_settings({}, {}, tmp_path, tmp_path / "missing.toml")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[kaltura]\npartner = 1\n", "unknown setting kaltura.partner"),
        ("[kaltura\n", "invalid TOML"),
        ("[extra]\n", r"unknown section \[extra\]"),
        ("[kretain]\nconcurrency = 0\n", "from 1 to 256"),
        ('[kretain]\nas_of = "soon"\n', "must be a date"),
        ("[kretain]\nrequests_per_second = -1\n", ">= 0"),
        ('[kaltura]\nservice_url = "ftp://x"\n', "http"),
        ('[kaltura]\napp_token_hash_type = "CRC32"\n', "SHA1, SHA256"),
        ("[policy]\nexemptions = { tagz = [] }\n", "unknown setting 'tagz'"),
    ],
)
def test_bad_toml_is_one_clear_error(tmp_path: Path, text: str, message: str) -> None:
    write_toml(tmp_path, text)
    with pytest.raises(ConfigError, match=message) as info:
        load_settings({}, {}, tmp_path, None)
    assert "\n" not in str(info.value)


def test_bad_env_values(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="KRETAIN_CONCURRENCY must be an integer"):
        load_settings({}, {"KRETAIN_CONCURRENCY": "many"}, tmp_path, None)
    with pytest.raises(ConfigError, match="KRETAIN_AS_OF"):
        load_settings({}, {"KRETAIN_AS_OF": "2026-13-01"}, tmp_path, None)
    s = load_settings(
        {}, {"KRETAIN_DB": "  ", "KRETAIN_REQUESTS_PER_SECOND": "2.5"}, tmp_path, None
    )
    assert s.db == tmp_path / "kretain.db" and s.requests_per_second == 2.5


def test_validate_credentials(tmp_path: Path) -> None:
    def settings(**env: str) -> Settings:
        return load_settings({}, env, tmp_path, None)

    with pytest.raises(ConfigError, match="missing Kaltura partner id"):
        settings().validate_credentials()
    with pytest.raises(
        ConfigError, match="KALTURA_PARTNER_ID must be a positive integer, got 'abc'"
    ):
        settings(KALTURA_PARTNER_ID="abc").validate_credentials()
    with pytest.raises(ConfigError, match="positive integer"):
        load_settings({"partner_id": "-5"}, {}, tmp_path, None).validate_credentials()
    with pytest.raises(ConfigError, match="missing Kaltura credentials"):
        settings(KALTURA_PARTNER_ID="1").validate_credentials()
    with pytest.raises(
        ConfigError, match="KALTURA_APP_TOKEN_ID is set but KALTURA_APP_TOKEN is not"
    ):
        settings(KALTURA_PARTNER_ID="1", KALTURA_APP_TOKEN_ID="0_tok").validate_credentials()
    with pytest.raises(ConfigError, match="KALTURA_APP_TOKEN is set but KALTURA_APP_TOKEN_ID"):
        settings(KALTURA_PARTNER_ID="1", KALTURA_APP_TOKEN=TOKEN).validate_credentials()
    with pytest.raises(ConfigError, match="KALTURA_ADMIN_SECRET looks malformed") as info:
        settings(
            KALTURA_PARTNER_ID="1", KALTURA_ADMIN_SECRET="has space inside"
        ).validate_credentials()
    assert "has space" not in str(info.value)
    with pytest.raises(ConfigError, match="--app-token-id must look like"):
        load_settings(
            {"app_token_id": "0 bad", "app_token": TOKEN, "partner_id": 1}, {}, tmp_path, None
        ).validate_credentials()

    ok = settings(KALTURA_PARTNER_ID="1234567", KALTURA_ADMIN_SECRET=SECRET)
    ok.validate_credentials()
    assert (ok.partner_id, ok.auth_mode) == (1234567, "admin_secret")
    tok = settings(KALTURA_PARTNER_ID="1", KALTURA_APP_TOKEN_ID="0_tok", KALTURA_APP_TOKEN=TOKEN)
    tok.validate_credentials()
    assert tok.auth_mode == "app_token"


def test_secrets_never_in_repr(tmp_path: Path) -> None:
    write_toml(tmp_path, f'[kaltura]\nadmin_secret = "{SECRET}"\npartner_id = 5\n')
    s = load_settings({"app_token": TOKEN, "app_token_id": "0_t"}, {}, tmp_path, None)
    assert s.admin_secret == SECRET and s.app_token == TOKEN
    for text in (repr(s), str(s), f"{s}", repr([s])):
        assert SECRET not in text and TOKEN not in text
        assert "admin_secret='***'" in text
    with pytest.raises(ConfigError) as info:
        load_settings({"admin_secret": 5}, {}, tmp_path, None)
    assert SECRET not in str(info.value)


def test_rendered_default_toml_round_trips_to_the_defaults(tmp_path: Path) -> None:
    text = render_default_toml()
    parsed = tomllib.loads(text)
    assert set(parsed) == {"kaltura", "kretain", "delete", "report", "policy"}
    write_toml(tmp_path, text)
    s = load_settings({}, {}, tmp_path, None)
    defaults = load_settings({}, {}, tmp_path / "..", None)
    assert s.policy == Policy.default()
    assert (s.service_url, s.concurrency, s.requests_per_second, s.app_token_hash_type) == (
        defaults.service_url, defaults.concurrency, None, "SHA256",
    )  # fmt: skip
    assert s.db == tmp_path / "kretain.db"
    assert (s.report_out, s.report_format, s.report_hide_owners) == (None, "html", False)
    # Every setting is explained: each key and env var name appears in the text.
    for word in ("KALTURA_PARTNER_ID", "KALTURA_ADMIN_SECRET", "KALTURA_APP_TOKEN_ID",
                 "KRETAIN_DB", "KRETAIN_ARCHIVE", "entry_ids_file", "non_ready_exemptible",
                 "include_quiz", "include_external", "categories", "owners",
                 "KRETAIN_REPORT_OUT", "KRETAIN_REPORT_FORMAT", "KRETAIN_REPORT_HIDE_OWNERS",
                 "# out =", "# format =", "# hide_owners ="):  # fmt: skip
        assert word in text


def test_policy_from_toml_with_entry_id_file(tmp_path: Path) -> None:
    (tmp_path / "keep.txt").write_text("entry_id\n0_keep0001  # legal\n\n# note\n1_keep0002,x\n")
    write_toml(
        tmp_path,
        '[policy]\ninclude_quiz = false\n[policy.exemptions]\ntags = ["Hold"]\n'
        'entry_ids_file = "keep.txt"\n'
        '[[policy.rules]]\nname = "old"\nmin_age_years = 5\nnot_played_years = 5\n'
        'action = "delete_entry"\n',
    )
    s = load_settings({}, {}, tmp_path, None)
    assert [r.name for r in s.policy.rules] == ["old"]
    assert s.policy.exemptions.entry_ids == {"0_keep0001", "1_keep0002"}
    assert s.policy.exemptions.tags == {"hold"} and not s.policy.include_quiz
    (tmp_path / "keep.txt").write_text("0_ok\n../../etc\n")
    with pytest.raises(ConfigError, match=r"keep.txt:2: not an entry id"):
        load_settings({}, {}, tmp_path, None)
    with pytest.raises(ConfigError, match="cannot read exemption id list"):
        read_entry_ids(tmp_path / "nope.txt")


def test_init_template_configures_no_archive(tmp_path: Path) -> None:
    """README: no archive by default. The template must agree: backups stay off until the
    user names an archive (runner.archive_configured looks at where `archive` came from)."""
    from kretain.workers.runner import archive_configured

    write_toml(tmp_path, render_default_toml())
    s = load_settings({}, {}, tmp_path, None)
    assert "archive" not in s.sources
    assert not archive_configured(s)
    assert '# archive = "kretain-archive"' in render_default_toml()
    # Naming one still turns backups on.
    assert archive_configured(load_settings({}, {"KRETAIN_ARCHIVE": "a"}, tmp_path, None))


def test_delete_settings_from_toml_env_and_flags(tmp_path: Path) -> None:
    (tmp_path / "kretain.toml").write_text(
        '[delete]\nmode = "recycle"\nmax_delete_bytes = "2TiB"\nrate = 20\nnotice_days = 14\n'
        '[[policy.rules]]\nname = "old"\naction = "delete_entry"\nmin_age_years = 5\n'
        "not_played_years = 5\nbackup = false\n"
    )
    s = load_settings({}, {"KRETAIN_MAX_DELETES": "250"}, tmp_path)
    assert (s.delete_mode, s.max_delete_bytes, s.delete_rate, s.notice_days) == (
        "recycle", 2 * 1024**4, 20, 14,
    )  # fmt: skip
    assert (s.max_deletes, s.delete_window, s.recycle_retention_days) == (250, 10.0, 30)
    assert not s.policy.needs_backup("old") and s.policy.needs_backup("renamed since")
    flags = load_settings({"delete_mode": "delete", "max_delete_bytes": "500GB"}, {}, tmp_path)
    assert (flags.delete_mode, flags.max_delete_bytes) == ("delete", 500 * 10**9)
    for bad in ({"delete_mode": "shred"}, {"max_delete_bytes": "lots"}, {"max_deletes": "0"}):
        with pytest.raises(ConfigError):
            load_settings(bad, {}, tmp_path)


def test_report_settings_from_toml_env_and_flags(tmp_path: Path) -> None:
    conf = tmp_path / "conf"
    conf.mkdir()
    toml = write_toml(
        conf, '[report]\nout = "reports/board.md"\nformat = "markdown"\nhide_owners = true\n'
    )
    s = load_settings({}, {}, tmp_path, toml)
    assert s.report_out == conf / "reports" / "board.md"  # relative to the file
    assert (s.report_format, s.report_hide_owners) == ("markdown", True)
    assert s.sources["report_hide_owners"] == f"report.hide_owners in {toml}"
    env = {"KRETAIN_REPORT_OUT": "env.html", "KRETAIN_REPORT_FORMAT": "HTML",
           "KRETAIN_REPORT_HIDE_OWNERS": "0"}  # fmt: skip
    s = load_settings({}, env, tmp_path, toml)
    assert (s.report_out, s.report_format, s.report_hide_owners) == (
        tmp_path / "env.html", "html", False,
    )  # fmt: skip
    flags = {"report_out": "-", "report_format": "markdown", "report_hide_owners": True}
    s = load_settings(flags, env, tmp_path, toml)
    assert (s.report_out, s.report_format, s.report_hide_owners) == (STDOUT, "markdown", True)
    assert load_settings({}, {"KRETAIN_REPORT_OUT": " - "}, tmp_path).report_out == STDOUT
    for value in ("yes", "on", "TRUE", "1"):
        assert load_settings({}, {"KRETAIN_REPORT_HIDE_OWNERS": value}, tmp_path).report_hide_owners
    for bad in ({"KRETAIN_REPORT_FORMAT": "pdf"}, {"KRETAIN_REPORT_HIDE_OWNERS": "maybe"}):
        with pytest.raises(ConfigError, match=next(iter(bad))):
            load_settings({}, bad, tmp_path)
    for text, message in (
        ("[report]\nhide_owners = 2\n", "report.hide_owners .* must be true or false"),
        ("[report]\nformat = 1\n", "report.format .* must be html or markdown"),
        ('[report]\nout = ""\n', "report.out .* must be a path"),
        ("[report]\nhide = true\n", "unknown setting report.hide"),
    ):
        write_toml(conf, text)
        with pytest.raises(ConfigError, match=message):
            load_settings({}, {}, tmp_path, toml)

"""Settings: flags > environment > kretain.toml > defaults, frozen once loaded.

Names:
    Settings                  frozen dataclass (fields below); repr never shows a secret
    load_settings(flags, env, cwd, config_path) -> Settings
    Settings.validate_credentials() -> None     ConfigError (one line) if the API can't be used
    Settings.auth_mode -> "app_token" | "admin_secret" | None
    render_default_toml() -> str               the commented kretain.toml `kretain init` writes
    policy_setting_sources(settings) -> [(setting, source)]   for `kretain policy`
    read_entry_ids(path) -> frozenset[str]     the exemption id-list file format
    ENV_NAMES                                  field -> environment variable

Fields, environment variables and kretain.toml keys:
    service_url          KALTURA_SERVICE_URL          [kaltura] service_url  (https://www.kaltura.com)
    partner_id           KALTURA_PARTNER_ID           [kaltura] partner_id
    admin_secret         KALTURA_ADMIN_SECRET         [kaltura] admin_secret
    user_id              KALTURA_USER_ID              [kaltura] user_id
    app_token_id         KALTURA_APP_TOKEN_ID         [kaltura] app_token_id
    app_token            KALTURA_APP_TOKEN            [kaltura] app_token
    app_token_hash_type  KALTURA_APP_TOKEN_HASH_TYPE  [kaltura] app_token_hash_type  (SHA256)
    db                   KRETAIN_DB                   [kretain] db            (./kretain.db)
    archive              KRETAIN_ARCHIVE              [kretain] archive       (./kretain-archive;
                                                      backups run only when one is named)
                         a path, or s3://bucket/prefix (kept as that string)
    s3_endpoint_url      KRETAIN_S3_ENDPOINT_URL      [kretain] s3_endpoint_url (AWS; set for
                                                      an S3-compatible store)
    s3_region            KRETAIN_S3_REGION            [kretain] s3_region     (the AWS default)
    as_of                KRETAIN_AS_OF                [kretain] as_of         (today, UTC)
    concurrency          KRETAIN_CONCURRENCY          [kretain] concurrency   (8)
    requests_per_second  KRETAIN_REQUESTS_PER_SECOND  [kretain] requests_per_second (unlimited)
    delete_mode          KRETAIN_DELETE_MODE          [delete] mode           (delete | recycle)
    max_deletes          KRETAIN_MAX_DELETES          [delete] max_deletes    (no cap)
    max_delete_bytes     KRETAIN_MAX_DELETE_BYTES     [delete] max_delete_bytes ("500GB", "2TiB")
    delete_rate          KRETAIN_DELETE_RATE          [delete] rate           (35 calls per window
                                                      per action)
    delete_window        KRETAIN_DELETE_WINDOW        [delete] window_seconds (10)
    recycle_retention_days KRETAIN_RECYCLE_RETENTION_DAYS [delete] recycle_retention_days (30)
    notice_days          KRETAIN_NOTICE_DAYS          [delete] notice_days    (0 = no notice needed)
    report_out           KRETAIN_REPORT_OUT           [report] out            (kretain-report.html
                                                      or .md next to the database; - = stdout)
    report_format        KRETAIN_REPORT_FORMAT        [report] format         (html | markdown)
    report_hide_owners   KRETAIN_REPORT_HIDE_OWNERS   [report] hide_owners    (false)
    policy               -                            [policy] ...            (the seed policy)

``flags`` uses the field names as keys; None values mean "not given". Relative paths from flags
and the environment resolve against ``cwd``; from kretain.toml against the file's directory.
Unknown kretain.toml keys are errors (a typo in an exemption must not silently widen deletes).
Malformed credentials do not stop loading (``kretain status`` needs none); commands that call
Kaltura run ``validate_credentials()`` first.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from kretain.errors import ConfigError
from kretain.policy import Policy
from kretain.rules import is_valid_id

__all__ = [
    "CONFIG_FILENAME",
    "DEFAULT_SERVICE_URL",
    "ENV_NAMES",
    "Settings",
    "load_settings",
    "policy_setting_sources",
    "read_entry_ids",
    "render_default_toml",
]

CONFIG_FILENAME = "kretain.toml"
DEFAULT_SERVICE_URL = "https://www.kaltura.com"
HASH_TYPES = ("SHA1", "SHA256", "SHA512", "MD5")
REPORT_FORMATS = ("html", "markdown")
STDOUT = Path("-")  # report_out: write the report to standard output
_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off")
SECRET_FIELDS = frozenset({"admin_secret", "app_token"})

ENV_NAMES: dict[str, str] = {
    "service_url": "KALTURA_SERVICE_URL",
    "partner_id": "KALTURA_PARTNER_ID",
    "admin_secret": "KALTURA_ADMIN_SECRET",
    "user_id": "KALTURA_USER_ID",
    "app_token_id": "KALTURA_APP_TOKEN_ID",
    "app_token": "KALTURA_APP_TOKEN",
    "app_token_hash_type": "KALTURA_APP_TOKEN_HASH_TYPE",
    "db": "KRETAIN_DB",
    "archive": "KRETAIN_ARCHIVE",
    "as_of": "KRETAIN_AS_OF",
    "concurrency": "KRETAIN_CONCURRENCY",
    "requests_per_second": "KRETAIN_REQUESTS_PER_SECOND",
    "s3_endpoint_url": "KRETAIN_S3_ENDPOINT_URL",
    "s3_region": "KRETAIN_S3_REGION",
    "delete_mode": "KRETAIN_DELETE_MODE",
    "max_deletes": "KRETAIN_MAX_DELETES",
    "max_delete_bytes": "KRETAIN_MAX_DELETE_BYTES",
    "delete_rate": "KRETAIN_DELETE_RATE",
    "delete_window": "KRETAIN_DELETE_WINDOW",
    "recycle_retention_days": "KRETAIN_RECYCLE_RETENTION_DAYS",
    "notice_days": "KRETAIN_NOTICE_DAYS",
    "report_out": "KRETAIN_REPORT_OUT",
    "report_format": "KRETAIN_REPORT_FORMAT",
    "report_hide_owners": "KRETAIN_REPORT_HIDE_OWNERS",
}
# kretain.toml keys that are not the field's own name ([delete] mode -> delete_mode).
_TOML_KEYS: dict[str, str] = {
    "delete_mode": "mode",
    "delete_rate": "rate",
    "delete_window": "window_seconds",
    "report_out": "out",
    "report_format": "format",
    "report_hide_owners": "hide_owners",
}
_TOML_SECTIONS: dict[str, tuple[str, ...]] = {
    "kaltura": (
        "service_url",
        "partner_id",
        "admin_secret",
        "user_id",
        "app_token_id",
        "app_token",
        "app_token_hash_type",
    ),
    "kretain": (
        "db",
        "archive",
        "as_of",
        "concurrency",
        "requests_per_second",
        "s3_endpoint_url",
        "s3_region",
    ),
    "delete": (
        "delete_mode",
        "max_deletes",
        "max_delete_bytes",
        "delete_rate",
        "delete_window",
        "recycle_retention_days",
        "notice_days",
    ),
    "report": ("report_out", "report_format", "report_hide_owners"),
}
_REGION_RE = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


def _today() -> date:
    return datetime.now(UTC).date()


@dataclass(frozen=True)
class Settings:
    service_url: str = DEFAULT_SERVICE_URL
    partner_id: int | None = None
    admin_secret: str | None = None
    user_id: str | None = None
    app_token_id: str | None = None
    app_token: str | None = None
    app_token_hash_type: str = "SHA256"
    db: Path = Path("kretain.db")
    archive: Path | str = Path("kretain-archive")  # str: an s3://bucket/prefix URI
    as_of: date = field(default_factory=_today)
    concurrency: int = 8
    requests_per_second: float | None = None
    delete_mode: str = "delete"
    max_deletes: int | None = None
    max_delete_bytes: int | None = None
    delete_rate: int = 35
    delete_window: float = 10.0
    recycle_retention_days: int = 30
    notice_days: int = 0
    report_out: Path | None = None  # None: kretain-report.html (.md) next to the database
    report_format: str = "html"
    report_hide_owners: bool = False
    policy: Policy = field(default_factory=Policy.default)
    s3_endpoint_url: str | None = None  # an S3-compatible store; None = AWS
    s3_region: str | None = None  # None = from the AWS environment/config
    config_file: Path | None = None  # the kretain.toml that was read, if any
    # Where each non-default value came from, e.g. {"db": "KRETAIN_DB"}; for error messages.
    sources: Mapping[str, str] = field(default_factory=dict)
    # The partner id as given when it could not be parsed (validate_credentials reports it).
    partner_id_raw: str | None = None
    # Where [policy] keys came from, e.g. {"rules": "policy.rules in /x/kretain.toml",
    # "exemptions.tags": ...}; keys absent here are defaults. For `kretain policy`.
    policy_sources: Mapping[str, str] = field(default_factory=dict)

    def __repr__(self) -> str:
        parts = []
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name in SECRET_FIELDS:
                shown = "'***'" if value else "None"
            elif f.name == "policy":
                shown = f"Policy(rules={[r.name for r in value.rules]})"
            else:
                shown = repr(value)
            parts.append(f"{f.name}={shown}")
        return f"Settings({', '.join(parts)})"

    __str__ = __repr__

    @property
    def auth_mode(self) -> str | None:
        """ "app_token" when the token pair is set (preferred: scoped, revocable), else
        "admin_secret" when that is set, else None."""
        if self.app_token_id and self.app_token:
            return "app_token"
        if self.admin_secret:
            return "admin_secret"
        return None

    def _name(self, field_name: str) -> str:
        return self.sources.get(field_name, ENV_NAMES[field_name])

    def validate_credentials(self) -> None:
        """Raise ConfigError (one line, never containing a secret) unless the API is usable."""
        if self.partner_id is None:
            if self.partner_id_raw is not None:
                raise ConfigError(
                    f"{self._name('partner_id')} must be a positive integer, "
                    f"got {self.partner_id_raw[:40]!r}"
                )
            raise ConfigError(
                "missing Kaltura partner id: set KALTURA_PARTNER_ID, --partner-id or "
                "[kaltura] partner_id in kretain.toml"
            )
        if bool(self.app_token_id) != bool(self.app_token):
            have, lack = (
                ("app_token_id", "app_token")
                if self.app_token_id
                else ("app_token", "app_token_id")
            )
            raise ConfigError(
                f"{self._name(have)} is set but {ENV_NAMES[lack]} is not: an app token needs both"
            )
        if self.auth_mode is None:
            raise ConfigError(
                "missing Kaltura credentials: set KALTURA_ADMIN_SECRET, or KALTURA_APP_TOKEN_ID "
                "and KALTURA_APP_TOKEN"
            )
        for name in ("admin_secret", "app_token"):
            value = getattr(self, name)
            if value is None:
                continue
            if len(value) < 8 or any(c.isspace() or not c.isprintable() for c in value):
                raise ConfigError(
                    f"{self._name(name)} looks malformed (too short, or contains spaces or "
                    "control characters)"
                )
        if self.app_token_id is not None and not is_valid_id(self.app_token_id):
            raise ConfigError(
                f"{self._name('app_token_id')} must look like 0_abc123, "
                f"got {self.app_token_id[:40]!r}"
            )


# ---- parsing ------------------------------------------------------------------------------


def _parse(name: str, value: Any, origin: str, base: Path) -> Any:
    """Coerce one raw value (str from env/flags, typed from TOML) or raise ConfigError."""
    if name in ("service_url",):
        text = str(value).strip().rstrip("/")
        if not re.match(r"^https?://[^\s/]+", text):
            # Not echoed either: a query string may carry a signature.
            raise ConfigError(f"{origin} must be an http(s) URL like https://s3.example.edu")
        return text
    if name == "archive" and isinstance(value, str) and value.strip().lower().startswith("s3://"):
        from kretain.archive.target import parse_s3_uri

        try:
            bucket, prefix = parse_s3_uri(value.strip())
        except ConfigError as exc:
            raise ConfigError(f"{origin}: {exc}") from None
        return f"s3://{bucket}/{prefix}" if prefix else f"s3://{bucket}"
    if name == "s3_endpoint_url":
        text = str(value).strip().rstrip("/")
        if "@" in text.split("//", 1)[-1].split("/", 1)[0]:
            # Never echo it: the part before "@" is a key or a password.
            raise ConfigError(f"{origin} must not contain credentials (use the AWS settings)")
        if not re.match(r"^https?://[^\s/@?#]+(/[^\s?#]*)?$", text):
            # Not echoed either: a query string may carry a signature.
            raise ConfigError(f"{origin} must be an http(s) URL like https://s3.example.edu")
        return text
    if name == "s3_region":
        text = str(value).strip()
        if not _REGION_RE.match(text):
            raise ConfigError(f"{origin} must be a region name like eu-west-1, got {text[:40]!r}")
        return text
    if name in ("db", "archive", "report_out"):
        if not isinstance(value, str | Path) or not str(value).strip():
            raise ConfigError(f"{origin} must be a path")
        if name == "report_out" and str(value).strip() == "-":
            return STDOUT
        path = Path(str(value)).expanduser()
        return path if path.is_absolute() else base / path
    if name == "report_format":
        text = str(value).strip().lower()
        if text not in REPORT_FORMATS:
            raise ConfigError(f"{origin} must be html or markdown, got {value!r}")
        return text
    if name == "report_hide_owners":
        if isinstance(value, bool):
            return value
        text = str(value).strip().lower()
        if text not in (*_TRUE, *_FALSE):
            raise ConfigError(f"{origin} must be true or false, got {value!r}")
        return text in _TRUE
    if name == "as_of":
        if isinstance(value, date) and not isinstance(value, datetime):
            return value
        try:
            return date.fromisoformat(str(value).strip())
        except ValueError:
            raise ConfigError(f"{origin} must be a date like 2026-01-31, got {value!r}") from None
    if name == "concurrency":
        try:
            number = int(str(value).strip()) if not isinstance(value, bool) else None
        except ValueError:
            number = None
        if number is None or not 1 <= number <= 256:
            raise ConfigError(f"{origin} must be an integer from 1 to 256, got {value!r}")
        return number
    if name == "requests_per_second":
        try:
            rate = float(str(value).strip()) if not isinstance(value, bool) else -1.0
        except ValueError:
            rate = -1.0
        if rate < 0 or rate != rate:  # NaN
            raise ConfigError(f"{origin} must be a number >= 0 (0 = unlimited), got {value!r}")
        return rate or None
    if name == "delete_mode":
        text = str(value).strip().lower()
        if text not in ("delete", "recycle"):
            raise ConfigError(f"{origin} must be delete or recycle, got {value!r}")
        return text
    if name == "max_delete_bytes":
        try:
            return parse_size(value)
        except ValueError:
            raise ConfigError(
                f"{origin} must be a size like 500GB or 2TiB, got {str(value)[:40]!r}"
            ) from None
    if name in ("max_deletes", "delete_rate", "recycle_retention_days", "notice_days"):
        lowest = 1 if name in ("delete_rate", "max_deletes") else 0
        try:
            number = int(str(value).strip()) if not isinstance(value, bool) else None
        except ValueError:
            number = None
        if number is None or not lowest <= number <= 10**9:
            raise ConfigError(f"{origin} must be a whole number >= {lowest}, got {value!r}")
        return number
    if name == "delete_window":
        try:
            seconds = float(str(value).strip()) if not isinstance(value, bool) else 0.0
        except ValueError:
            seconds = 0.0
        if not 0.1 <= seconds <= 3600:
            raise ConfigError(f"{origin} must be seconds between 0.1 and 3600, got {value!r}")
        return seconds
    if name == "app_token_hash_type":
        text = str(value).strip().upper()
        if text not in HASH_TYPES:
            raise ConfigError(f"{origin} must be one of {', '.join(HASH_TYPES)}, got {value!r}")
        return text
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise ConfigError(f"{origin} must be a string")
    text = str(value).strip()
    return text or None


_SIZE = re.compile(r"(\d+(?:\.\d+)?)\s*([KMGTP]?)(I?)B?", re.IGNORECASE)


def parse_size(value: Any) -> int:
    """Bytes from 500GB, 2TiB, 1.5 TB, 4096 (1000-based units; KiB, MiB ... 1024-based)."""
    if isinstance(value, bool):
        raise ValueError("not a size")
    if isinstance(value, int):
        if value < 0:
            raise ValueError("negative size")
        return value
    m = _SIZE.fullmatch(str(value).strip())
    if not m:
        raise ValueError(f"not a size: {value!r}")
    number, unit, binary = float(m.group(1)), m.group(2).upper(), bool(m.group(3))
    if binary and not unit:
        raise ValueError(f"not a size: {value!r}")
    power = "KMGTP".index(unit) + 1 if unit else 0
    return int(number * (1024 if binary else 1000) ** power)


def _parse_partner_id(value: Any) -> tuple[int | None, str | None]:
    text = str(value).strip()
    if not isinstance(value, bool) and re.fullmatch(r"\d{1,12}", text) and int(text) > 0:
        return int(text), None
    return None, text


def read_entry_ids(path: Path) -> frozenset[str]:
    """One entry id per line (first token; extra columns ignored); blank lines and # comments
    skipped. A line that is not an entry id raises ConfigError naming the line."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except OSError as exc:
        raise ConfigError(f"cannot read exemption id list {path}: {exc.strerror}") from None
    ids: set[str] = set()
    for number, line in enumerate(text.splitlines(), 1):
        token = re.split(r"[\s,;]+", line.split("#", 1)[0].strip(), maxsplit=1)[0]
        if not token:
            continue
        if token.lower() in ("entry_id", "id", "entryid") and not ids:
            continue  # a CSV header
        if not is_valid_id(token):
            raise ConfigError(f"{path}:{number}: not an entry id: {token[:40]!r}")
        ids.add(token)
    return frozenset(ids)


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as fh:
            return tomllib.load(fh)
    except FileNotFoundError:
        raise ConfigError(f"config file {path} does not exist") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: invalid TOML: {exc}") from None
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc.strerror}") from None


def load_settings(
    flags: Mapping[str, Any],
    env: Mapping[str, str],
    cwd: Path,
    config_path: Path | None = None,
) -> Settings:
    """Merge flags > env > kretain.toml (``config_path`` or ``cwd``/kretain.toml) > defaults."""
    unknown_flags = set(flags) - set(ENV_NAMES)
    if unknown_flags:
        raise ValueError(f"unknown settings in flags: {sorted(unknown_flags)}")
    cwd = Path(cwd)
    toml_path: Path | None
    if config_path is not None:
        toml_path = config_path if Path(config_path).is_absolute() else cwd / config_path
        data = _read_toml(toml_path)
    else:
        toml_path = cwd / CONFIG_FILENAME
        data = _read_toml(toml_path) if toml_path.is_file() else {}
        if not data and not toml_path.is_file():
            toml_path = None

    extra = sorted(set(data) - {*_TOML_SECTIONS, "policy"})
    if extra:
        raise ConfigError(f"{toml_path}: unknown section [{extra[0]}]")
    raw: dict[str, tuple[Any, str, Path]] = {}  # name -> (value, origin label, base dir)
    for section, names in _TOML_SECTIONS.items():
        table = data.get(section, {})
        if not isinstance(table, dict):
            raise ConfigError(f"{toml_path}: [{section}] must be a table")
        keys = {_TOML_KEYS.get(name, name): name for name in names}
        bad = sorted(set(table) - set(keys))
        if bad:
            raise ConfigError(f"{toml_path}: unknown setting {section}.{bad[0]}")
        for key, name in keys.items():
            if key in table:
                assert toml_path is not None
                raw[name] = (table[key], f"{section}.{key} in {toml_path}", toml_path.parent)
    for name, var in ENV_NAMES.items():
        value = env.get(var)
        if value is not None and value.strip() != "":
            raw[name] = (value, var, cwd)
    for name, value in flags.items():
        if value is not None:
            raw[name] = (value, f"--{name.replace('_', '-')}", cwd)

    values: dict[str, Any] = {}
    sources: dict[str, str] = {}
    for name, (value, origin, base) in raw.items():
        sources[name] = origin
        if name == "partner_id":
            values["partner_id"], values["partner_id_raw"] = _parse_partner_id(value)
        elif name in SECRET_FIELDS:
            if not isinstance(value, str):
                raise ConfigError(f"{origin} must be a string")
            values[name] = value.strip() or None
        else:
            values[name] = _parse(name, value, origin, base)
    values.setdefault("db", cwd / "kretain.db")
    values.setdefault("archive", cwd / "kretain-archive")

    policy_section = data.get("policy", {})
    if not isinstance(policy_section, dict):
        raise ConfigError(f"{toml_path}: [policy] must be a table")
    policy_sources: dict[str, str] = {}
    if toml_path is not None:
        for key in ("rules", "include_quiz", "include_external", "non_ready_exemptible"):
            if key in policy_section:
                policy_sources[key] = f"policy.{key} in {toml_path}"
        if isinstance(policy_section.get("exemptions"), dict):
            for key in policy_section["exemptions"]:
                policy_sources[f"exemptions.{key}"] = f"policy.exemptions.{key} in {toml_path}"
    entry_ids: frozenset[str] = frozenset()
    ids_file = (
        policy_section.get("exemptions", {}).get("entry_ids_file")
        if isinstance(policy_section.get("exemptions", {}), dict)
        else None
    )
    if ids_file is not None:
        if not isinstance(ids_file, str) or not ids_file.strip():
            raise ConfigError("policy.exemptions.entry_ids_file must be a path")
        assert toml_path is not None
        ids_path = Path(ids_file).expanduser()
        ids_path = ids_path if ids_path.is_absolute() else toml_path.parent / ids_path
        entry_ids = read_entry_ids(ids_path)
        policy_sources["exemptions.entry_ids_file"] += f" ({ids_path}, {len(entry_ids)} ids)"
    try:
        values["policy"] = Policy.from_mapping(policy_section, entry_ids=entry_ids)
    except ConfigError as exc:
        where = f"{toml_path}: " if toml_path else ""
        raise ConfigError(f"{where}{exc}") from None
    return Settings(**values, config_file=toml_path, sources=sources, policy_sources=policy_sources)


def policy_setting_sources(settings: Settings) -> list[tuple[str, str]]:
    """(setting, where its value came from) for everything the policy depends on: a flag, an
    environment variable, kretain.toml, or the default."""
    rows = [
        ("settings file", str(settings.config_file) if settings.config_file else "none"),
        ("as_of", settings.sources.get("as_of", "default (today, UTC)")),
        ("policy.rules", settings.policy_sources.get("rules", "default (the seed's rules)")),
    ]
    for key in ("include_quiz", "include_external", "non_ready_exemptible"):
        rows.append((f"policy.{key}", settings.policy_sources.get(key, "default")))
    for key in ("entry_ids", "entry_ids_file", "tags", "category_ids", "categories", "owners"):
        source = settings.policy_sources.get(f"exemptions.{key}", "default (none)")
        rows.append((f"policy.exemptions.{key}", source))
    return rows


# ---- kretain init -------------------------------------------------------------------------

_DEFAULT_TOML = """\
# kretain.toml: settings for kretain, the Kaltura media retention tool.
# Precedence: command-line flags > environment variables > this file > built-in defaults.
# Keep secrets out of this file if you can: prefer the environment variables named below.
# If you do put a secret here, make the file readable only by you (chmod 600 kretain.toml).

[kaltura]
# API endpoint of your Kaltura deployment.                           env KALTURA_SERVICE_URL
service_url = "https://www.kaltura.com"
# Your partner id (KMC > Settings > Integration Settings).             env KALTURA_PARTNER_ID
# partner_id = 1234567
# Either an admin secret ...                                         env KALTURA_ADMIN_SECRET
# admin_secret = "..."
# ... or (preferred: scoped and revocable) an app token created with
# sessionType=2 and sessionPrivileges including disableentitlement.
#                                       env KALTURA_APP_TOKEN_ID, KALTURA_APP_TOKEN
# app_token_id = "0_abcd1234"
# app_token = "..."
# Hash the token was created with: SHA1, SHA256, SHA512 or MD5.  env KALTURA_APP_TOKEN_HASH_TYPE
app_token_hash_type = "SHA256"
# User id recorded in the Kaltura session (optional).                   env KALTURA_USER_ID
# user_id = "retention-bot"

[kretain]
# The state database: every entry and every decision is a row here.   env KRETAIN_DB
# Relative paths in this file are relative to this file's directory.
db = "kretain.db"
# Where backups (source flavors, captions, attachments, thumbnails, entry.json) go.
# No archive by default: `kretain run` then audits only. Uncomment this (or set KRETAIN_ARCHIVE,
# or pass --archive) to back up every candidate after the audit.     env KRETAIN_ARCHIVE
# archive = "kretain-archive"
# The date the policy is evaluated at (YYYY-MM-DD); default: today (UTC). env KRETAIN_AS_OF
# as_of = "2026-01-31"
# Parallel API requests / downloads.                                 env KRETAIN_CONCURRENCY
concurrency = 8
# Cap on API calls per second; 0 = no cap.                   env KRETAIN_REQUESTS_PER_SECOND
requests_per_second = 0
# The archive can also be a bucket: archive = "s3://my-bucket/kaltura-archive". Credentials
# come from the usual AWS places (environment, ~/.aws profile, instance role), never here.
# For an S3-compatible store (MinIO, Ceph, SeaweedFS ...) give its endpoint.
#                                                                 env KRETAIN_S3_ENDPOINT_URL
# s3_endpoint_url = "https://s3.example.edu"
# Region of the bucket (default: from the AWS environment/config).      env KRETAIN_S3_REGION
# s3_region = "us-east-1"

[delete]
# How `kretain run --delete --yes` acts (without --yes it only writes the plan). Flags override.
# delete: baseEntry.delete; recycle: baseEntry.recycle (needs the partner's recycle bin;
# flavors never go to the bin).                                      env KRETAIN_DELETE_MODE
mode = "delete"
# Stop a run after this many entries acted on / before exceeding these bytes ("500GB", "2TiB").
#                                          env KRETAIN_MAX_DELETES, KRETAIN_MAX_DELETE_BYTES
# max_deletes = 1000
# max_delete_bytes = "2TiB"
# Calls per window per action (baseEntry.delete, baseEntry.recycle, flavorAsset.delete). Admins
# report 35 per 10 s for deletes; kretain slows down by itself on ACTION_BLOCKED.
#                                             env KRETAIN_DELETE_RATE, KRETAIN_DELETE_WINDOW
rate = 35
window_seconds = 10
# Days the partner's recycle bin keeps an entry (5, 15 or 30).  env KRETAIN_RECYCLE_RETENTION_DAYS
recycle_retention_days = 30
# Act on an entry only when its owner was told (`kretain notify`) at least this many days
# before; 0 = no notice needed.                                      env KRETAIN_NOTICE_DAYS
notice_days = 0

[report]
# `kretain report`, the page for decision makers. Flags (--out, --format, --hide-owners) override.
# Where it writes: a file (relative to this file's directory), or "-" for standard output.
# Default: kretain-report.html (kretain-report.md) next to the database.  env KRETAIN_REPORT_OUT
# out = "reports/kretain-report.html"
# html: one self-contained page with charts; markdown: the same tables, for a ticket or a wiki.
#                                                                    env KRETAIN_REPORT_FORMAT
# format = "html"
# Number the owners (owner 1, owner 2 ...) instead of naming them, and hide the names of
# exempt owners, for a wider audience.                          env KRETAIN_REPORT_HIDE_OWNERS
# hide_owners = false

[policy]
# Rules are tried in order; the first that matches decides. The [[policy.rules]] below are the
# defaults written out: if this file has any [[policy.rules]], they replace the defaults entirely.
# Ages are in 365-day years counted from the entry's creation to as_of; "N years" includes exactly
# N years.
# Quiz entries (capabilities contain quiz.quiz) and external/YouTube entries
# (type externalMedia.externalMedia) are labelled in reports. Set these to false to exempt them.
include_quiz = true
include_external = true
# May tags/categories/owners exempt an entry that never became ready? (The entry-id list always
# does.) Default false, like UCSD: a broken entry cannot be kept by its owner.
non_ready_exemptible = false

# Entries that never became ready (any status below), created 2+ years before as_of:
# delete the entry. Statuses: -2 ERROR_IMPORTING, -1 ERROR_CONVERTING, 0 IMPORT, 1 PRECONVERT,
# 4 PENDING, 5 MODERATE, 6 BLOCKED, 7 NO_CONTENT, plus the virus-scan plugin's values.
[[policy.rules]]
name = "non-ready"
statuses = ["-2", "-1", "0", "1", "4", "5", "6", "7", "virusScan.Infected", "virusScan.ScanFailure"]
min_age_years = 2
action = "delete_entry"

# Created 4+ years ago and not played for 4+ years (or never): back up, then delete the entry.
# (A delete_entry rule deletes only after its backup is verified; `backup = false` on a rule
# deletes without one.)
[[policy.rules]]
name = "4-year"
min_age_years = 4
not_played_years = 4
action = "delete_entry"

# Created 2-4 years ago and not played for 2+ years (or never): delete every flavor except the
# source (the entry stays playable after re-transcoding; no backup needed).
[[policy.rules]]
name = "2-year"
min_age_years = 2
max_age_years = 4
not_played_years = 2
action = "delete_flavors"

# An entry created 4+ years ago but played 2-4 years ago matches no rule and is kept.
# Rule keys: name, action (delete_entry | delete_flavors), min_age_years (required),
# max_age_years, not_played_years, statuses (non-ready rules only), backup (delete_entry rules:
# true by default).

[policy.exemptions]
# Entries matching any of these are reported as exempt and never touched.
# Tags (case-insensitive, whole tag).
tags = []
# Category ids the entry is directly in (sub-categories have their own ids).
category_ids = []
# Category full names; a name also covers its sub-categories ("A>B" covers "A>B>C", not "A>BC").
categories = []
# Owners (Kaltura userId, case-insensitive).
owners = []
# Entry ids, here and/or in a file with one id per line (# comments allowed; relative to this
# file's directory).
entry_ids = []
# entry_ids_file = "keep-ids.txt"
"""


def render_default_toml() -> str:
    """The commented kretain.toml `kretain init` writes; loading it gives the default policy."""
    return _DEFAULT_TOML

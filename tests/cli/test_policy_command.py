"""`kretain policy` shows the effective policy in plain words; `run` and `policy` warn."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from kretain.cli import cli

SHADOWING_TOML = """
[policy]
include_quiz = false
[policy.exemptions]
tags = ["Legal"]
entry_ids_file = "keep.txt"
[[policy.rules]]
name = "old"
min_age_years = 3
not_played_years = 3
action = "delete_entry"
[[policy.rules]]
name = "ancient"
min_age_years = 5
not_played_years = 5
action = "delete_entry"
"""


def invoke(args: list[str], env: dict[str, str] | None = None):
    return CliRunner().invoke(cli, args, env=env or {}, catch_exceptions=False)


def words(text: str) -> str:
    return " ".join(text.split())  # the text output wraps to the terminal


def test_default_policy_in_plain_words() -> None:
    result = invoke(["policy", "--as-of", "2026-11-29"])
    assert result.exit_code == 0, result.output
    assert result.stderr == ""  # the default policy raises no warning
    out = words(result.stdout)
    assert out.startswith("Policy at as-of 2026-11-29 (--as-of)")
    assert (
        "2. 4-year: ready entries created at or before 2022-11-30 00:00 UTC (4+ years before "
        "the as-of date) that were never played or last played at or before 2022-11-30 00:00 "
        "UTC (4+ years before): back up, then delete the entry" in out
    )
    assert "1. non-ready: entries that never became ready" in out
    assert "quiz entries: included (include_quiz = true)" in out
    assert "settings file none" in out and "policy.rules default (the seed's rules)" in out


def test_sources_exemptions_and_shadowing_warning(tmp_path: Path) -> None:
    (tmp_path / "keep.txt").write_text("0_keep0001\n0_keep0002\n")
    (tmp_path / "kretain.toml").write_text(SHADOWING_TOML)
    result = invoke(["policy", "--format", "json"], {"KRETAIN_AS_OF": "2026-01-31"})
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    toml = tmp_path / "kretain.toml"
    assert data["as_of"] == "2026-01-31"
    assert [r["name"] for r in data["rules"]] == ["old", "ancient"]
    assert data["exemptions"]["entry_ids"] == 2 and data["exemptions"]["tags"] == ["legal"]
    sources = data["sources"]
    assert sources["as_of"] == "KRETAIN_AS_OF"
    assert sources["settings file"] == str(toml)
    assert sources["policy.rules"] == f"policy.rules in {toml}"
    assert sources["policy.include_quiz"] == f"policy.include_quiz in {toml}"
    assert sources["policy.include_external"] == "default"
    assert sources["policy.exemptions.entry_ids_file"] == (
        f"policy.exemptions.entry_ids_file in {toml} ({tmp_path / 'keep.txt'}, 2 ids)"
    )
    warning = (
        "kretain: warning: rule 'ancient' can never match: every entry it covers is matched "
        "first by 'old' (rules are tried in order; the first match decides)"
    )
    assert result.stderr.splitlines() == [warning]
    assert data["warnings"] == [warning.removeprefix("kretain: warning: ")]


def test_run_warns_about_a_future_as_of_before_anything_else() -> None:
    result = invoke(["run", "--as-of", "2999-01-01"], {"KALTURA_PARTNER_ID": "123"})
    lines = result.stderr.splitlines()
    assert lines[0].startswith("kretain: warning: as-of 2999-01-01 is in the future")
    assert "the delete stage will refuse a future as-of" in lines[0]
    assert result.exit_code != 0 and "credentials" in lines[-1]  # then stops, as before

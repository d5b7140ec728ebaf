"""Where things may happen: state writes in transitions.py only, SQL in the store only."""

from __future__ import annotations

import ast
import re
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "kretain"

# An SQL statement that writes rows of `entries` and names the state column.
_WRITES_ENTRIES = re.compile(
    r"\b(UPDATE\s+entries\b|INSERT\s+(OR\s+\w+\s+)?INTO\s+entries\b)", re.I
)
_NAMES_STATE = re.compile(r"\bstate\b\s*(=|,|\))", re.I)
_SQL = re.compile(
    r"^\s*(SELECT\s.+\bFROM\b|UPDATE\s+\w+\s+SET\b|INSERT\s+(OR\s+\w+\s+)?INTO\b"
    r"|DELETE\s+FROM\b|CREATE\s+(TEMP\s+)?(TABLE|INDEX|VIEW|TRIGGER)\b|DROP\s+\w+\s+\w"
    r"|ALTER\s+TABLE\b|PRAGMA\s+\w+|WITH\s+\w+\s+AS\b)",
    re.I | re.S,
)


def _strings(path: Path) -> list[tuple[int, str]]:
    """Every string literal of a module (f-strings included, joined), with its line."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    out: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            out.append((node.lineno, node.value))
        elif isinstance(node, ast.JoinedStr):
            text = "".join(v.value if isinstance(v, ast.Constant) else "{}" for v in node.values)
            out.append((node.lineno, text))
    return out


def _modules(*skip: str) -> list[Path]:
    return [
        p
        for p in sorted(PACKAGE.rglob("*.py"))
        if not any(p.relative_to(PACKAGE).as_posix().startswith(s) for s in skip)
    ]


def test_only_transitions_writes_entries_state() -> None:
    # migrations.py may carry old states forward once; the simulator is Kaltura's side.
    offenders = []
    for path in _modules("store/transitions.py", "store/migrations.py", "simulator/"):
        for line, text in _strings(path):
            if _WRITES_ENTRIES.search(text) and _NAMES_STATE.search(text):
                offenders.append(f"{path.relative_to(PACKAGE)}:{line}: {text.strip()[:80]}")
    assert not offenders, "entries.state written outside transitions.py:\n" + "\n".join(offenders)


def test_the_scan_sees_a_state_write() -> None:
    # The check above must be able to fail: these are the shapes it looks for.
    for sql in (
        "UPDATE entries SET state = ? WHERE id = ?",
        "INSERT INTO entries (id, state) VALUES (?, ?)",
        "update entries set policy = ?, state = 'kept'",
    ):
        assert _WRITES_ENTRIES.search(sql) and _NAMES_STATE.search(sql), sql
    assert not _NAMES_STATE.search("UPDATE entries SET held_reason = ? WHERE id = ?")
    for sql in ("SELECT id FROM entries", "DELETE FROM meta WHERE key = ?", "PRAGMA user_version"):
        assert _SQL.match(sql), sql
    for text in ("delete", "delete.done", "select a rule", "update the archive"):
        assert not _SQL.match(text), text


def test_workers_hold_no_sql() -> None:
    offenders = [
        f"{path.relative_to(PACKAGE)}:{line}: {text.strip()[:60]}"
        for path in sorted((PACKAGE / "workers").glob("*.py"))
        for line, text in _strings(path)
        if _SQL.match(text)
    ]
    assert not offenders, "SQL in the workers (it belongs in kretain/store):\n" + "\n".join(
        offenders
    )

"""Restore tests: the backup tests' helpers are importable by name from here too."""

from __future__ import annotations

import sys
from pathlib import Path

_BACKUP_TESTS = str(Path(__file__).resolve().parents[1] / "backup")
if _BACKUP_TESTS not in sys.path:
    sys.path.insert(0, _BACKUP_TESTS)

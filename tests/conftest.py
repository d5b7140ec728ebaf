"""Shared fixtures. Every test runs with a clean KRETAIN_*/KALTURA_* environment."""

from __future__ import annotations

import os

import pytest


@pytest.fixture(autouse=True)
def _clean_environ(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    for name in list(os.environ):
        if name.startswith(("KRETAIN_", "KALTURA_")):
            monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)

"""Regenerate the README's picture of the report: the demo's report in headless Chromium.

    make demo                                    # once: the demo database
    .venv/bin/python scripts/report_screenshot.py [--db kretain-demo/kretain.db]
        [--out docs/report.png] [--width 1280] [--height 1900]

Writes the report of the database to a temporary file with `kretain report` (so the picture
shows exactly what the command writes), then has Chromium (Debian: chromium-headless-shell)
screenshot the top of the page at the given window size.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BROWSERS = ("chromium-headless-shell", "chromium", "chromium-browser", "google-chrome")
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--db", type=Path, default=ROOT / "kretain-demo" / "kretain.db")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "report.png")
    parser.add_argument("--width", type=int, default=1280)
    parser.add_argument("--height", type=int, default=1900)
    args = parser.parse_args()
    browser = next((p for name in BROWSERS if (p := shutil.which(name))), None)
    if browser is None:
        print("no headless Chromium: apt-get install chromium-headless-shell", file=sys.stderr)
        return 1
    if not args.db.exists():
        print(f"{args.db} does not exist: run `make demo` first", file=sys.stderr)
        return 1
    kretain = Path(sys.executable).with_name("kretain")
    with tempfile.TemporaryDirectory() as tmp:
        page = Path(tmp) / "report.html"
        subprocess.run(
            [str(kretain), "--db", str(args.db), "report", "--out", str(page)],
            check=True,
            stdout=subprocess.DEVNULL,
        )
        args.out.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            [
                browser,
                *FLAGS,
                f"--user-data-dir={Path(tmp) / 'profile'}",
                f"--window-size={args.width},{args.height}",
                f"--screenshot={args.out.resolve()}",
                page.as_uri(),
            ],
            check=True,
            capture_output=True,
        )
    print(f"{args.out} ({args.out.stat().st_size:,} bytes)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

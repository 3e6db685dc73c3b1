"""README stays in step with the code: its settings table is `--about --format=markdown`."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"
START, END = "<!-- settings:start -->", "<!-- settings:end -->"


def settings_table() -> str:
    about = subprocess.run(
        [sys.executable, "-m", "target_usage", "--about", "--format=markdown"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    lines = about.split("## Settings", 1)[1].strip().splitlines()
    return "\n".join(line for line in lines if line.startswith("|"))


def test_readme_settings_table_is_the_about_output() -> None:
    text = README.read_text()
    embedded = text.split(START, 1)[1].split(END, 1)[0].strip()
    assert embedded == settings_table(), (
        "README settings table is stale: run `python tests/test_docs.py` to regenerate it"
    )


if __name__ == "__main__":
    text = README.read_text()
    head, rest = text.split(START, 1)
    README.write_text(f"{head}{START}\n{settings_table()}\n{END}{rest.split(END, 1)[1]}")

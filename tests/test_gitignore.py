"""What `pip install .`, the tests and sample runs leave in a checkout is ignored by git."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
LEFT_BEHIND = [
    "build/lib/target_usage/target.py",
    "dist/target_usage-0.1.0-py3-none-any.whl",
    "target_usage.egg-info/PKG-INFO",
    "target_usage/__pycache__/target.cpython-311.pyc",
    "target-usage-requests.jsonl",
    "target-usage-rejected.jsonl",
    "target-usage-ledger.sqlite",
    "target-usage-ledger.sqlite-wal",
    "examples/target-usage-requests.jsonl",
    "output/target-usage-requests.jsonl",
    ".meltano/run/target-usage/target.config.json",
    ".env",
]


@pytest.mark.parametrize("path", LEFT_BEHIND)
def test_what_installs_and_runs_leave_behind_is_ignored(path: str) -> None:
    git = shutil.which("git")
    if git is None or not (REPO / ".git").exists():
        pytest.skip("not a git checkout")
    done = subprocess.run([git, "check-ignore", "-q", path], cwd=REPO, check=False)
    assert done.returncode == 0, f"{path} is not ignored: add it to .gitignore"

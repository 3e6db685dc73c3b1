"""docs/reliability.md's fault matrix is what this session's fault scenarios measured.

Runs last (see conftest). With TARGET_USAGE_WRITE_RELIABILITY=1 it rewrites the file
instead (`python -m tests.faults.render_reliability` does that).
"""

from __future__ import annotations

import json
import os

import pytest

from tests.faults import render_reliability as doc


def test_reliability_doc_matrix_is_the_measured_outcomes() -> None:
    missing = doc.missing()
    if missing:
        pytest.skip(f"only part of the fault suite ran (not measured: {', '.join(missing)})")
    if os.environ.get(doc.WRITE_ENV) == "1":
        doc.DOC.parent.mkdir(exist_ok=True)
        doc.DOC.write_text(doc.render())
    measured = doc.matrix_lines()
    committed = doc.committed_matrix(doc.DOC.read_text())
    outcomes = json.dumps([doc.MEASURED[row.id].as_dict() for row in doc.ROWS], indent=1)
    assert committed == measured, (
        "docs/reliability.md is stale: run `python -m tests.faults.render_reliability`.\n"
        f"Measured outcomes: {outcomes}"
    )


def test_reliability_doc_prose_is_the_rendered_text() -> None:
    """Guarantee and retry-policy sections are rendered too: no hand edits drift."""
    if doc.missing():
        pytest.skip("needs the whole fault suite to render the file")
    assert doc.DOC.read_text() == doc.render()

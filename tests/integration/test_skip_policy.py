"""Missing PostgreSQL or Meltano skips the integration tests, unless CI requires them."""

from __future__ import annotations

import pytest

from tests.integration.conftest import REQUIRE_ENV, unavailable


def test_missing_tools_skip_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(REQUIRE_ENV, raising=False)

    with pytest.raises(pytest.skip.Exception, match="no postgres"):
        unavailable("no postgres")


def test_missing_tools_fail_when_integration_is_required(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(REQUIRE_ENV, "1")

    with pytest.raises(pytest.fail.Exception, match="no postgres"):
        unavailable("no postgres")

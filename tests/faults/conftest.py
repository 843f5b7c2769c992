"""Fault tests run `ballast` in child processes that use the session's Prefect API server."""

from __future__ import annotations

import pytest


@pytest.fixture
def api_url(prefect_harness: None) -> str:
    from prefect.settings import PREFECT_API_URL

    url = PREFECT_API_URL.value()
    assert url, "the Prefect test harness did not set an API URL"
    return str(url)

"""A real Jaeger v2 for the tests in this folder, found through the environment.

``dashboards/jaeger/start.sh`` builds Jaeger from source (once) and starts it on loopback; it
prints the variables read here, so ``eval "$(bash dashboards/jaeger/start.sh)"`` is all a
developer needs. Without them, or when Jaeger does not answer, every test here skips with that
one line. CI (``.ci/run``) also sets ``PFLOW_TRACE_REQUIRE_JAEGER=1``: there a missing Jaeger
fails the tests instead, so a broken build cannot pass as a green run with skips.
"""

from __future__ import annotations

import os

import pytest

from .jaeger_api import JaegerApi, JaegerUnavailable

URL_ENV = "PFLOW_TRACE_JAEGER_URL"
OTLP_HTTP_ENV = "PFLOW_TRACE_JAEGER_OTLP_HTTP"
OTLP_GRPC_ENV = "PFLOW_TRACE_JAEGER_OTLP_GRPC"
REQUIRE_ENV = "PFLOW_TRACE_REQUIRE_JAEGER"
HOW_TO_START = 'eval "$(bash dashboards/jaeger/start.sh)"'


def _missing(reason: str) -> None:
    message = f"Jaeger not running ({reason}): {HOW_TO_START}"
    if os.environ.get(REQUIRE_ENV) == "1":
        pytest.fail(f"{REQUIRE_ENV}=1 but {message}", pytrace=False)
    pytest.skip(message)


@pytest.fixture(scope="session")
def jaeger() -> JaegerApi:
    """The running Jaeger: its query API and OTLP endpoints (skips, or fails in CI, without)."""
    settings = {name: os.environ.get(name) for name in (URL_ENV, OTLP_HTTP_ENV, OTLP_GRPC_ENV)}
    unset = [name for name, value in settings.items() if not value]
    if unset:
        _missing(f"{', '.join(unset)} not set")
    api = JaegerApi(
        str(settings[URL_ENV]), str(settings[OTLP_HTTP_ENV]), str(settings[OTLP_GRPC_ENV])
    )
    try:
        api.services()
    except JaegerUnavailable as problem:
        _missing(str(problem))
    return api

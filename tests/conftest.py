"""Fixtures. Every fixture that starts Ray stops it again in its teardown."""
from __future__ import annotations

import pytest

from rayserve_pulumi.node_agent import ray_ops
from rayserve_pulumi.config import LocalSettings, ServeSettings
from rayserve_pulumi.local import LocalServeProvider, provider_inputs
from rayserve_pulumi.config import build_serve_config
from tests.helpers import free_port

STAND_IN_TEXT = {
    "Summarizer": {"user_config": {"model": "stand-in"}},
    "Translator": {"user_config": {"language": "french", "model": "stand-in"}},
}


@pytest.fixture(scope="module")
def local_serve():
    """A real local Ray head with every bundled app, created through the local provider."""
    settings = LocalSettings(gcs_port=free_port(), dashboard_port=free_port(), num_cpus=4)
    serve_settings = ServeSettings(http_port=free_port(), overrides={"summarize_translate": STAND_IN_TEXT})
    props = provider_inputs(settings, build_serve_config(serve_settings))
    provider = LocalServeProvider()
    try:
        result = provider.create(props)
        yield provider, result
        provider.delete(result.id, result.outs)
    finally:
        ray_ops.stop()


@pytest.fixture(scope="session")
def rendered():
    """Every stack in stacks/, rendered once under Pulumi mocks."""
    from tests.pulumi_harness import all_stacks, render, stack_values

    return {stack: render(stack_values(stack), stack) for stack in all_stacks()}


def pytest_terminal_summary(terminalreporter):
    """Print the reliability reports (requests sent/failed per scenario) at the end of the run."""
    from tests.helpers import REPORTS

    if REPORTS:
        terminalreporter.section("reliability under load")
        for name, report in REPORTS.items():
            terminalreporter.write_line(f"{name}: {report}")

"""Fixtures. Every fixture that starts Ray stops it again in its teardown."""
from __future__ import annotations

import asyncio
import json

import pytest

from rayserve_pulumi.config.validate import validate_stack
from rayserve_pulumi.local import provider_inputs
from tests.helpers import ROOT, free_local_ports, free_port, local_head


@pytest.fixture(autouse=True)
def _an_event_loop():
    """A current event loop for Pulumi's mocks: a test that ran `asyncio.run` (the Serve apps' tests) leaves
    none, and `rayserve render` in-process would then fail for whichever test runs next."""
    try:
        asyncio.get_event_loop_policy().get_event_loop()
    except RuntimeError:
        asyncio.set_event_loop(asyncio.new_event_loop())
    yield


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory):
    """A folder holding `tiny-t5`, the random T5-shaped model and tokenizer generated offline."""
    from scripts.tiny_t5 import make_tiny_t5

    root = tmp_path_factory.mktemp("models")
    make_tiny_t5(root / "tiny-t5")
    return root


def with_override(props: dict, app: str, deployment: str, **fields) -> dict:
    """Provider inputs with fields of one deployment of the Serve config changed."""
    config = json.loads(props["serve_config_json"])
    target = next(a for a in config["applications"] if a["name"] == app)
    next(d for d in target["deployments"] if d["name"] == deployment).update(fields)
    return {**props, "serve_config_json": json.dumps(config, sort_keys=True)}


@pytest.fixture(scope="module")
def local_serve(tiny_models, tmp_path_factory):
    """The quick start: stacks/Pulumi.local.yaml (on free ports) created through the local provider, every
    bundled app included; the text app loads tiny-t5. Module-scoped: other modules' teardown stops Ray."""
    from tests.pulumi_harness import stack_values

    values = stack_values("local")
    values["local"] = {**values["local"], **free_local_ports()}
    values["serve"] = {**values["serve"], "http_port": free_port()}
    values["metrics"] = {**values.get("metrics", {}), "prometheus_port": free_port()}
    cfg, serve_config = validate_stack(values, ROOT)
    props = provider_inputs(cfg.local, serve_config, str(tmp_path_factory.mktemp("run")), cfg.serve.runtime_env(),
                            str(tiny_models), cfg.metrics)
    with local_head(props) as head:
        yield head


@pytest.fixture(scope="session")
def rendered():
    """Every stack in stacks/, rendered once under Pulumi mocks."""
    from tests.pulumi_harness import all_stacks, render, stack_values

    return {stack: render(stack_values(stack), stack) for stack in all_stacks()}


def pytest_collection_modifyitems(items):
    """The real-Ray tests first: they are the long ones, so run in parallel (`-n 2 --dist loadscope`) the mock
    tests fill the other process meanwhile. A stable sort: each module's order is kept."""
    items.sort(key=lambda item: item.get_closest_marker("ray") is None)


_SEEN = pytest.StashKey[dict]()


def pytest_runtest_setup(item):
    from tests.helpers import REPORTS

    item.stash[_SEEN] = dict(REPORTS)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """Hand the scenario reports a test made to the process that prints the summary (under pytest-xdist the
    tests run in other processes): as its report's user properties, which xdist carries over."""
    from tests.helpers import REPORTS

    outcome = yield
    seen = item.stash.get(_SEEN, {})
    made = {k: v for k, v in REPORTS.items() if seen.get(k) is not v}
    if made:
        outcome.get_result().user_properties.append(("scenario_reports", made))
        item.stash[_SEEN] = dict(REPORTS)


def pytest_runtest_logreport(report):
    from tests.helpers import REPORTS

    for key, value in report.user_properties:
        if key == "scenario_reports":
            REPORTS.update(value)


def pytest_terminal_summary(terminalreporter):
    """Print the reliability and failure-recovery reports (requests sent/failed, recovery time per
    scenario) at the end of the run, and add them to test-results/reliability.json (ignored by git): merged, as
    scripts/test.sh runs the real-Ray tests in two pytest sessions (it removes the file before the first)."""
    from tests.helpers import REPORTS, RESULTS

    if REPORTS:
        RESULTS.mkdir(exist_ok=True)
        file = RESULTS / "reliability.json"
        earlier = json.loads(file.read_text()) if file.exists() else {}
        file.write_text(json.dumps({**earlier, **REPORTS}, indent=2))
        terminalreporter.section("reliability and failure recovery under load")
        for name, report in REPORTS.items():
            terminalreporter.write_line(f"{name}: {report}")

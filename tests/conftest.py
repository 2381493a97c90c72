"""Fixtures. Every fixture that starts Ray stops it again in its teardown."""
from __future__ import annotations

import asyncio
import json
from collections import defaultdict
from pathlib import Path

import pytest


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


@pytest.fixture(scope="session")
def rendered():
    """Every stack in stacks/, rendered once under Pulumi mocks."""
    from tests.pulumi_harness import all_stacks, render, stack_values

    return {stack: render(stack_values(stack), stack) for stack in all_stacks()}


# Packages whose modules share one Ray stack (a package-scoped fixture in the package's conftest).
SHARED_STACK_PACKAGES = ("tests/local_stack/",)
# Seconds each unit of real-Ray work (a module, or a package of SHARED_STACK_PACKAGES) took in one run of the
# suite's real-Ray phase: the order the two pytest-xdist workers take them in (longest first, so neither is
# left alone with a long one at the end). `--store-ray-durations PATH` writes a run's figures in this form.
RAY_DURATIONS = Path(__file__).with_name("ray_durations.json")


def ray_scope(nodeid: str) -> str:
    """The unit of work a real-Ray test belongs to: its shared-stack package, else its module."""
    shared = [package for package in SHARED_STACK_PACKAGES if nodeid.startswith(package)]
    return shared[0] if shared else nodeid.split("::")[0]


def pytest_addoption(parser):
    parser.addoption("--store-ray-durations", metavar="PATH",
                     help="write the seconds each real-Ray unit of work took (tests/ray_durations.json's form)")


def pytest_collection_modifyitems(items):
    """The real-Ray tests first: they are the long ones, so run in parallel (`-n 2 --dist loadscope`) the mock
    tests fill the other process meanwhile. Among them the costliest units first, by RAY_DURATIONS (a unit it
    does not know counts as the costliest); scripts/test.sh keeps this order (`--no-loadscope-reorder`), where
    xdist would order the units by their number of tests. A stable sort: each module's order is kept."""
    known = json.loads(RAY_DURATIONS.read_text()) if RAY_DURATIONS.exists() else {}
    unknown = max(known.values(), default=0.0)

    def key(item):
        if item.get_closest_marker("ray") is None:
            return (1, 0.0)
        return (0, -known.get(ray_scope(item.nodeid), unknown))

    items.sort(key=key)


def pytest_xdist_make_scheduler(config, log):
    """`--dist loadscope`, with each package of SHARED_STACK_PACKAGES one unit of work: a worker runs its
    modules one after the other, so its stack starts once (split by module, each worker would start its own).
    pytest-xdist's own `loadgroup` would do this by mark, but its marks are lost under pytest 9.2. This
    overrides `_split_scope`, private, as xdist's own loadfile and loadgroup schedulers do; without it, plain
    loadscope (a stack per worker)."""
    from xdist.scheduler import LoadScopeScheduling

    if config.getvalue("dist") != "loadscope" or not hasattr(LoadScopeScheduling, "_split_scope"):
        return None

    class SharedStackScheduling(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return ray_scope(nodeid)

    return SharedStackScheduling(config, log)


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


_RAY_SECONDS: defaultdict[str, float] = defaultdict(float)


def pytest_runtest_logreport(report):
    from tests.helpers import REPORTS

    if "ray" in report.keywords:
        _RAY_SECONDS[ray_scope(report.nodeid)] += report.duration
    for key, value in report.user_properties:
        if key == "scenario_reports":
            REPORTS.update(value)


def pytest_terminal_summary(terminalreporter):
    """Print the reliability and failure-recovery reports (requests sent/failed, recovery time per
    scenario) at the end of the run, and add them to test-results/reliability.json (ignored by git): merged, as
    scripts/test.sh runs the real-Ray tests in two pytest sessions (it removes the file before the first)."""
    from tests.helpers import REPORTS, RESULTS

    if (out := terminalreporter.config.getoption("--store-ray-durations")) and _RAY_SECONDS:
        Path(out).write_text(json.dumps({k: round(v, 1) for k, v in sorted(_RAY_SECONDS.items())}, indent=2) + "\n")
    if REPORTS:
        RESULTS.mkdir(exist_ok=True)
        file = RESULTS / "reliability.json"
        earlier = json.loads(file.read_text()) if file.exists() else {}
        file.write_text(json.dumps({**earlier, **REPORTS}, indent=2))
        terminalreporter.section("reliability and failure recovery under load")
        for name, report in REPORTS.items():
            terminalreporter.write_line(f"{name}: {report}")

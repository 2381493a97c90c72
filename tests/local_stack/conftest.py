"""The quick-start stack, created once for every module of this package: starting it (all three apps, the
text app importing torch) is the suite's costliest set-up, and its modules restore what they change. Under
pytest-xdist the package is one unit of work (tests/conftest.py SHARED_STACK_PACKAGES)."""
from __future__ import annotations

import pytest

from rayserve_pulumi.config.validate import validate_stack
from rayserve_pulumi.local import provider_inputs
from tests.helpers import ROOT, free_local_ports, free_port, local_head


@pytest.fixture(scope="package")
def local_serve(tiny_models, tmp_path_factory):
    """stacks/Pulumi.local.yaml (on free ports) created through the local provider, every bundled app
    included; the text app loads tiny-t5."""
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

"""Calculator: POST ["MUL", 3] -> "15 pizzas please!", ["ADD", 3] -> "6 pizzas please!".

Contract (rayserve_pulumi.serve_apps.contract): [operation, value], operation ADD or MUL (any case), value
a number from -1e9 to 1e9; anything else is a 4xx with {"error": ...}.
"""
from ray import serve
from ray.serve.handle import DeploymentHandle
from starlette.requests import Request
from starlette.responses import JSONResponse

from rayserve_pulumi.serve_apps.contract import BadRequest, choice, number, pair, plain, read_json, typed_user_config
from rayserve_pulumi.serve_apps.user_configs import MAX_VALUE, AdderConfig, MultiplierConfig


@serve.deployment(ray_actor_options={"num_cpus": 0.1})
class Multiplier:
    def __init__(self, factor: float = 2):
        self.factor = factor

    def reconfigure(self, config: MultiplierConfig):
        factor = typed_user_config(MultiplierConfig, config).factor
        self.factor = self.factor if factor is None else factor

    def check_health(self):
        return None

    async def __call__(self, value: float) -> float:
        return value * self.factor


@serve.deployment(ray_actor_options={"num_cpus": 0.1})
class Adder:
    def __init__(self, increment: float = 1):
        self.increment = increment

    def reconfigure(self, config: AdderConfig):
        increment = typed_user_config(AdderConfig, config).increment
        self.increment = self.increment if increment is None else increment

    def check_health(self):
        return None

    async def __call__(self, value: float) -> float:
        return value + self.increment


@serve.deployment(ray_actor_options={"num_cpus": 0.1})
class Router:
    """Sends ["ADD"|"MUL", n] to the Adder or Multiplier and formats the order."""

    def __init__(self, adder: DeploymentHandle, multiplier: DeploymentHandle):
        self.ops = {"ADD": adder, "MUL": multiplier}

    def check_health(self):
        return None

    async def __call__(self, request: Request) -> JSONResponse:
        try:
            op, value = pair(await read_json(request), '[operation, value], e.g. ["MUL", 3]')
            handle = choice(op, "operation", self.ops)
            value = number(value, "value", -MAX_VALUE, MAX_VALUE)
        except BadRequest as bad:
            return bad.response()
        return JSONResponse(f"{plain(await handle.remote(value))} pizzas please!")


app = Router.bind(Adder.bind(), Multiplier.bind())

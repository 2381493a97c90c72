"""Calculator: POST ["MUL", 3] -> "15 pizzas please!", ["ADD", 3] -> "6 pizzas please!"."""
from ray import serve
from ray.serve.handle import DeploymentHandle
from starlette.requests import Request
from starlette.responses import JSONResponse


@serve.deployment(ray_actor_options={"num_cpus": 0.1})
class Multiplier:
    def __init__(self, factor: float = 2):
        self.factor = factor

    def reconfigure(self, config: dict):
        self.factor = config.get("factor", self.factor)

    def check_health(self):
        return None

    async def __call__(self, value: float) -> float:
        return value * self.factor


@serve.deployment(ray_actor_options={"num_cpus": 0.1})
class Adder:
    def __init__(self, increment: float = 1):
        self.increment = increment

    def reconfigure(self, config: dict):
        self.increment = config.get("increment", self.increment)

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
        op, value = await request.json()
        handle = self.ops.get(str(op).upper())
        if handle is None:
            return JSONResponse(f"unknown operation {op!r}; use ADD or MUL", status_code=400)
        amount = await handle.remote(value)
        if float(amount).is_integer():
            amount = int(amount)
        return JSONResponse(f"{amount} pizzas please!")


app = Router.bind(Adder.bind(), Multiplier.bind())

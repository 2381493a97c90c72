"""Fruit market: POST ["MANGO", 2] -> total price; prices come from each stand's user_config."""
import os

from ray import serve
from ray.serve.handle import DeploymentHandle
from starlette.requests import Request


class _Stand:
    """A fruit stand whose price is set (and changed in place) through user_config."""

    DEFAULT_PRICE = 1.0

    def __init__(self):
        self.price = self.DEFAULT_PRICE
        self.healthy = True

    def reconfigure(self, config: dict):
        self.price = float(config.get("price", self.DEFAULT_PRICE))

    def check_health(self):
        if not self.healthy:
            raise RuntimeError("replica marked unhealthy by an operator")
        if self.price < 0:
            raise RuntimeError(f"negative price {self.price}")

    def mark_unhealthy(self) -> int:
        """Operator hook: fail health checks from now on so Serve replaces this replica; returns its pid."""
        self.healthy = False
        return os.getpid()

    async def check_price(self, amount: float) -> float:
        return self.price * amount


@serve.deployment(ray_actor_options={"num_cpus": 0.1})
class MangoStand(_Stand):
    DEFAULT_PRICE = 1.0


@serve.deployment(ray_actor_options={"num_cpus": 0.1})
class OrangeStand(_Stand):
    DEFAULT_PRICE = 0.5


@serve.deployment(ray_actor_options={"num_cpus": 0.1})
class PearStand(_Stand):
    DEFAULT_PRICE = 0.75


@serve.deployment(ray_actor_options={"num_cpus": 0.1})
class FruitMarket:
    """Routes a [fruit, amount] order to the stand selling that fruit."""

    def __init__(self, mango: DeploymentHandle, orange: DeploymentHandle, pear: DeploymentHandle):
        self.stands = {"MANGO": mango, "ORANGE": orange, "PEAR": pear}

    def check_health(self):
        return None

    async def __call__(self, request: Request):
        fruit, amount = await request.json()
        stand = self.stands.get(str(fruit).upper())
        if stand is None:
            return -1
        total = await stand.check_price.remote(float(amount))
        return int(total) if float(total).is_integer() else total


app = FruitMarket.bind(MangoStand.bind(), OrangeStand.bind(), PearStand.bind())

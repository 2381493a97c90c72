"""Fruit market: POST ["MANGO", 2] -> total price; prices come from each stand's user_config.

Contract (rayserve_pulumi.serve_apps.http): [fruit, amount], fruit one of MANGO, ORANGE, PEAR
(any case), amount a number from 0 to 1,000,000; anything else is a 4xx with {"error": ...}.
"""
import os

from ray import serve
from ray.serve.handle import DeploymentHandle
from starlette.requests import Request

from rayserve_pulumi.serve_apps.http import BadRequest, choice, number, pair, plain, read_json

MAX_AMOUNT = 1_000_000


class _Stand:
    """A fruit stand whose price is set (and changed in place) through user_config."""

    DEFAULT_PRICE = 1.0

    def __init__(self):
        self.price = self.DEFAULT_PRICE
        self.healthy = True

    def reconfigure(self, config: dict):
        price = config.get("price", self.DEFAULT_PRICE)
        if isinstance(price, bool) or not isinstance(price, (int, float)) or not 0 <= price < float("inf"):
            raise ValueError(f"user_config.price must be a non-negative number, not {price!r}")
        self.price = float(price)

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
        try:
            fruit, amount = pair(await read_json(request), '[fruit, amount], e.g. ["MANGO", 2]')
            stand = choice(fruit, "fruit", self.stands)
            amount = number(amount, "amount", 0, MAX_AMOUNT)
        except BadRequest as bad:
            return bad.response()
        return plain(await stand.check_price.remote(float(amount)))


app = FruitMarket.bind(MangoStand.bind(), OrangeStand.bind(), PearStand.bind())

"""Fruit market: POST ["MANGO", 2] -> total price; prices come from each stand's user_config.

The market asks a stand through its DeploymentHandle, and the orders it holds for one stand at once go in
one call (the market's user_config `orders_per_call`, default ORDERS_PER_CALL; 1: a call per order).

Contract (rayserve_pulumi.serve_apps.contract): [fruit, amount], fruit one of MANGO, ORANGE, PEAR
(any case), amount a number from 0 to 1,000,000; anything else is a 4xx with {"error": ...}.
"""
import asyncio
import os
from typing import Union

from ray import serve
from ray.serve.handle import DeploymentHandle
from starlette.requests import Request

from rayserve_pulumi.serve_apps.contract import BadRequest, choice, number, pair, plain, read_json, typed_user_config
from rayserve_pulumi.serve_apps.user_configs import ORDERS_PER_CALL, MarketConfig, StandConfig

MAX_AMOUNT = 1_000_000


class _Stand:
    """A fruit stand whose price is set (and changed in place) through user_config."""

    DEFAULT_PRICE = 1.0

    def __init__(self):
        self.price = self.DEFAULT_PRICE
        self.healthy = True

    def reconfigure(self, config: StandConfig):
        price = typed_user_config(StandConfig, config).price
        self.price = self.DEFAULT_PRICE if price is None else price

    def check_health(self):
        if not self.healthy:
            raise RuntimeError("replica marked unhealthy by an operator")
        if self.price < 0:
            raise RuntimeError(f"negative price {self.price}")

    def mark_unhealthy(self) -> int:
        """Operator hook: fail health checks from now on so Serve replaces this replica; returns its pid."""
        self.healthy = False
        return os.getpid()

    async def check_prices(self, amounts: list[float]) -> list[float]:
        """The price of each amount (the market sends the orders it holds for this stand in one call)."""
        return [self.price * amount for amount in amounts]


@serve.deployment(ray_actor_options={"num_cpus": 0.1})
class MangoStand(_Stand):
    DEFAULT_PRICE = 1.0


@serve.deployment(ray_actor_options={"num_cpus": 0.1})
class OrangeStand(_Stand):
    DEFAULT_PRICE = 0.5


@serve.deployment(ray_actor_options={"num_cpus": 0.1})
class PearStand(_Stand):
    DEFAULT_PRICE = 0.75


async def price_orders(orders: list[tuple[DeploymentHandle, float]]) -> list[Union[float, Exception]]:
    """Each (stand, amount)'s price, asking every stand once for all its orders; a stand that fails fails
    its own orders only (its exception in their places)."""
    by_stand: dict[int, tuple[DeploymentHandle, list[int]]] = {}
    for i, (stand, _) in enumerate(orders):
        by_stand.setdefault(id(stand), (stand, []))[1].append(i)
    answers = await asyncio.gather(*(stand.check_prices.remote([orders[i][1] for i in places])
                                     for stand, places in by_stand.values()), return_exceptions=True)
    prices: list[Union[float, Exception]] = [0.0] * len(orders)
    for (_, places), answer in zip(by_stand.values(), answers):
        for n, i in enumerate(places):
            prices[i] = answer if isinstance(answer, Exception) else answer[n]
    return prices


@serve.deployment(ray_actor_options={"num_cpus": 0.1})
class FruitMarket:
    """Routes a [fruit, amount] order to the stand selling that fruit."""

    def __init__(self, mango: DeploymentHandle, orange: DeploymentHandle, pear: DeploymentHandle):
        self.stands = {"MANGO": mango, "ORANGE": orange, "PEAR": pear}

    def check_health(self):
        return None

    def reconfigure(self, config: MarketConfig):
        """user_config `orders_per_call` (default ORDERS_PER_CALL): 1 sends every order on its own, as the seed."""
        self._quote.set_max_batch_size(typed_user_config(MarketConfig, config).orders_per_call)

    async def __call__(self, request: Request):
        try:
            fruit, amount = pair(await read_json(request), '[fruit, amount], e.g. ["MANGO", 2]')
            stand = choice(fruit, "fruit", self.stands)
            amount = number(amount, "amount", 0, MAX_AMOUNT)
        except BadRequest as bad:
            return bad.response()
        price = await self._quote((stand, float(amount)))
        if isinstance(price, Exception):
            raise price
        return plain(price)

    @serve.batch(max_batch_size=ORDERS_PER_CALL, batch_wait_timeout_s=0, max_concurrent_batches=2)
    async def _quote(self, orders: list[tuple[DeploymentHandle, float]]) -> list[Union[float, Exception]]:
        """Orders that arrive while earlier ones are in flight reach each stand in one handle call: the hop
        stays, and its cost (a gRPC round trip, a request in the stand's replica) is paid per stand and
        batch rather than per order. Nothing waits for a batch to fill (batch_wait_timeout_s=0), so a lone
        order goes at once."""
        return await price_orders(orders)


app = FruitMarket.bind(MangoStand.bind(), OrangeStand.bind(), PearStand.bind())

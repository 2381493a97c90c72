"""The fruit market's coalescing of orders (`price_orders`, behind its `@serve.batch` method), in-process with
stand handles that record their calls; the real-Ray tests (tests/local_stack/test_serving.py) send concurrent
mixed orders."""
from __future__ import annotations

import asyncio
import json
import subprocess
import sys

import pytest

from rayserve_pulumi.serve_apps.fruit import FruitMarket, price_orders
from tests.pulumi_harness import ROOT


class _Method:
    def __init__(self, stand: "_Stand"):
        self.stand = stand

    def remote(self, amounts: list[float]):
        self.stand.calls.append(list(amounts))
        return self.stand.answer(amounts)


class _Stand:
    """What FruitMarket uses of a stand's DeploymentHandle: `check_prices.remote(amounts)`, awaitable."""

    def __init__(self, price: float, fails: bool = False):
        self.price, self.fails, self.calls = price, fails, []
        self.check_prices = _Method(self)

    async def answer(self, amounts: list[float]) -> list[float]:
        await asyncio.sleep(0)
        if self.fails:
            raise RuntimeError("stand replica died")
        return [self.price * a for a in amounts]


def test_each_stand_is_asked_once_for_all_its_orders_and_answers_land_in_order():
    mango, pear = _Stand(3.0), _Stand(4.0)
    orders = [(mango, 1.0), (pear, 2.0), (mango, 5.0), (mango, 0.5), (pear, 1.0)]
    assert asyncio.run(price_orders(orders)) == [3.0, 8.0, 15.0, 1.5, 4.0]
    assert mango.calls == [[1.0, 5.0, 0.5]] and pear.calls == [[2.0, 1.0]]


def test_a_failing_stand_fails_its_own_orders_only():
    mango, orange = _Stand(3.0), _Stand(2.0, fails=True)
    prices = asyncio.run(price_orders([(orange, 1.0), (mango, 2.0), (orange, 3.0)]))
    assert prices[1] == 6.0
    assert [type(p) for p in (prices[0], prices[2])] == [RuntimeError, RuntimeError]


def test_a_lone_order_is_one_call():
    mango = _Stand(3.0)
    assert asyncio.run(price_orders([(mango, 2.0)])) == [6.0] and mango.calls == [[2.0]]


COALESCING = """
import asyncio, json
from types import SimpleNamespace
from ray.serve import batching
from rayserve_pulumi.serve_apps.fruit import FruitMarket
from tests.serve_apps.test_fruit_orders import _Stand

# what @serve.batch reads of the replica it runs in (max_ongoing_requests), outside a replica
context = SimpleNamespace(_deployment_config=SimpleNamespace(max_ongoing_requests=64))
batching.serve.get_replica_context = lambda: context

async def main():
    calls = []
    for user_config in (None, {"orders_per_call": 1}):
        mango = _Stand(3.0)
        market = FruitMarket.func_or_class(mango, mango, mango)
        if user_config is not None:
            market.reconfigure(user_config)
        prices = await asyncio.gather(*(market._quote((mango, float(a))) for a in (1, 2, 3)))
        calls.append({"prices": prices, "calls": mango.calls})
    print(json.dumps(calls))

asyncio.run(main())
"""


def test_the_market_coalesces_concurrent_orders_unless_told_one_per_call():
    """In a fresh interpreter (the batch queue of a `@serve.batch` method is one per process and binds to the
    event loop it starts on, as in a replica): three concurrent orders through FruitMarket's `_quote`."""
    proc = subprocess.run([sys.executable, "-c", COALESCING], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    default, one_per_call = json.loads(proc.stdout.splitlines()[-1])
    assert default == {"prices": [3.0, 6.0, 9.0], "calls": [[1.0, 2.0, 3.0]]}
    assert one_per_call == {"prices": [3.0, 6.0, 9.0], "calls": [[1.0], [2.0], [3.0]]}


@pytest.mark.parametrize("bad, why", [(0, "greater than or equal to 1"), (1001, "less than or equal to 1000"),
                                      (2.0, "valid integer"), (True, "valid integer"), ("8", "valid integer")])
def test_orders_per_call_is_a_whole_number_from_1_to_1000(bad, why):
    with pytest.raises(ValueError, match=rf"orders_per_call\n  Input should be (a )?{why}"):
        FruitMarket.func_or_class(None, None, None).reconfigure({"orders_per_call": bad})

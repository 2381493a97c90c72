"""The fruit market's answer without the example's composition: as a plain Starlette app (no Ray, for
`uvicorn bench.plain_app:app`) and as a one-deployment Serve app (`one_deployment`, no handle hop)."""
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

PRICES = {"MANGO": 3.0, "ORANGE": 2.0, "PEAR": 4.0}  # the user_config prices of serve_config.yaml


def quote(fruit, amount):
    price = PRICES.get(str(fruit).upper())
    if price is None:
        return -1
    total = price * float(amount)
    return int(total) if total.is_integer() else total


async def market(request: Request) -> JSONResponse:
    fruit, amount = await request.json()
    return JSONResponse(quote(fruit, amount))


app = Starlette(routes=[Route("/fruit", market, methods=["POST"])])


def one_deployment_app():
    """The same handler as one Serve deployment (built lazily: importing this module needs no Ray)."""
    from ray import serve

    @serve.deployment(max_ongoing_requests=64)
    class Market:
        async def __call__(self, request: Request):
            fruit, amount = await request.json()
            return quote(fruit, amount)

    return Market.bind()

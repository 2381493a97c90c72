"""The fruit market's handler as a plain Starlette app (no Ray), for `uvicorn bench.plain_app:app`."""
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

PRICES = {"MANGO": 3.0, "ORANGE": 2.0, "PEAR": 4.0}  # the user_config prices of serve_config.yaml


async def market(request: Request) -> JSONResponse:
    fruit, amount = await request.json()
    price = PRICES.get(str(fruit).upper())
    if price is None:
        return JSONResponse(-1)
    total = price * float(amount)
    return JSONResponse(int(total) if total.is_integer() else total)


app = Starlette(routes=[Route("/fruit", market, methods=["POST"])])

"""The contract every bundled app keeps.

HTTP: POST a small JSON body; anything else is a 4xx with a short JSON error `{"error": "..."}` naming what
was wrong. Never a 500, never a wrong 200: types are checked, not coerced ("3" is not 3, true is not 1), and
numbers are finite.

user_config: each deployment declares a pydantic model and annotates `reconfigure(self, config: Model)`
with it; the package's validator checks every user_config against that model before anything is
deployed, and `typed_user_config` applies the same rule in the replica (Serve passes the JSON object).
"""
from __future__ import annotations

import json
import math
from typing import Any, TypeVar

from pydantic import BaseModel

from starlette.requests import Request
from starlette.responses import JSONResponse

MAX_BODY_BYTES = 64 * 1024
Model = TypeVar("Model", bound=BaseModel)


def typed_user_config(model: type[Model], config: Any) -> Model:
    """The user_config Serve hands `reconfigure` as the deployment's model, checked as the validator checks
    it: strictly, as JSON ("3" is not 3); a ValidationError fails the replica with every field named."""
    return model.model_validate_json(json.dumps({} if config is None else config), strict=True)


class BadRequest(Exception):
    """A request the app refuses: becomes `status` with {"error": message}."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
        self.message = message

    def response(self) -> JSONResponse:
        headers = {"Allow": "POST"} if self.status == 405 else None
        return JSONResponse({"error": self.message}, status_code=self.status, headers=headers)


def _no_constants(name: str):
    raise ValueError(f"{name} is not valid JSON")


async def read_json(request: Request) -> Any:
    """The request's JSON body, after checking the method, the size and the encoding."""
    if request.method != "POST":
        raise BadRequest(405, f"method {request.method} not allowed; POST a JSON body")
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > MAX_BODY_BYTES:
        raise BadRequest(413, f"body larger than {MAX_BODY_BYTES} bytes")
    body = await request.body()
    if len(body) > MAX_BODY_BYTES:
        raise BadRequest(413, f"body larger than {MAX_BODY_BYTES} bytes")
    if not body.strip():
        raise BadRequest(400, "empty body; POST a JSON body")
    try:
        return json.loads(body, parse_constant=_no_constants)
    except (ValueError, UnicodeDecodeError) as exc:
        raise BadRequest(400, f"body is not valid JSON: {str(exc).splitlines()[0][:120]}") from None


def pair(value: Any, shape: str) -> tuple[Any, Any]:
    """A two-element JSON array, or 422 naming the expected shape."""
    if not isinstance(value, list) or len(value) != 2:
        raise BadRequest(422, f"expected a JSON array {shape}")
    return value[0], value[1]


def number(value: Any, name: str, low: float, high: float) -> float:
    """A JSON number (not a boolean, not a string) within [low, high]."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise BadRequest(422, f"{name} must be a number, not {json.dumps(value)[:40]}")
    if not math.isfinite(value) or not low <= value <= high:
        raise BadRequest(422, f"{name} must be a number from {low:g} to {high:g}, not {value!r}")
    return value


def choice(value: Any, name: str, allowed: dict) -> Any:
    """One of `allowed`'s keys (a string, case-insensitive), or 422 listing them."""
    if not isinstance(value, str):
        raise BadRequest(422, f"{name} must be a string, one of {', '.join(allowed)}")
    try:
        return allowed[value.upper()]
    except KeyError:
        raise BadRequest(422, f"unknown {name} {value[:40]!r}; use one of {', '.join(allowed)}") from None


def plain(amount: float) -> float | int:
    """2.0 -> 2: whole results answer as integers, as the seed's examples do."""
    return int(amount) if float(amount).is_integer() else amount

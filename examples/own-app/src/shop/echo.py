"""POST a JSON string -> the greeting and the text, shouted by Shouter.

Echo's user_config is typed: `reconfigure` annotates a pydantic model, and `rayserve validate` checks every
user_config against it before anything is deployed. Shouter's is a plain dict (JSON checks only).
"""
from pydantic import BaseModel, ConfigDict, Field
from ray import serve
from ray.serve.handle import DeploymentHandle
from starlette.requests import Request
from starlette.responses import JSONResponse


class EchoConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    greeting: str = Field("hi", min_length=1, max_length=40)
    max_length: int = Field(100, ge=1, le=10_000)
    fail: bool = Field(False, description="fail reconfigure (a stand-in for a model that cannot load)")


@serve.deployment(ray_actor_options={"num_cpus": 0.1})
class Shouter:
    def __init__(self):
        self.exclaim = 1

    def reconfigure(self, config: dict):
        self.exclaim = int(config.get("exclaim", 1))

    def shout(self, text: str) -> str:
        return text.upper() + "!" * self.exclaim


@serve.deployment(ray_actor_options={"num_cpus": 0.1})
class Echo:
    def __init__(self, shouter: DeploymentHandle):
        self.shouter = shouter
        self.config = EchoConfig()

    def reconfigure(self, config: EchoConfig):
        config = EchoConfig.model_validate(config)  # Serve passes the JSON object
        if config.fail:
            raise RuntimeError("cannot load the greeting table (user_config.fail is set)")
        self.config = config

    async def __call__(self, request: Request) -> JSONResponse:
        text = await request.json()
        if not isinstance(text, str):
            return JSONResponse({"error": "POST a JSON string"}, status_code=422)
        shouted = await self.shouter.shout.remote(text[: self.config.max_length])
        return JSONResponse(f"{self.config.greeting}, {shouted}")


app = Echo.bind(Shouter.bind())

"""POST any JSON value -> it as a YAML document (pyyaml comes from app/requirements.txt)."""
import yaml
from pydantic import BaseModel, ConfigDict, Field
from ray import serve
from starlette.requests import Request
from starlette.responses import PlainTextResponse


class NotesConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    indent: int = Field(2, ge=1, le=8, description="spaces per YAML level")


@serve.deployment(ray_actor_options={"num_cpus": 0.1})
class Notes:
    def __init__(self):
        self.indent = 2

    def reconfigure(self, config: NotesConfig):
        self.indent = NotesConfig.model_validate(config).indent

    async def __call__(self, request: Request) -> PlainTextResponse:
        return PlainTextResponse(yaml.safe_dump(await request.json(), indent=self.indent, sort_keys=True))


app = Notes.bind()

"""Summarise English text, then translate the summary (the seed's two-deployment text app).

POST a JSON string of English text -> a JSON string: the summary, translated (French by default;
German or Romanian through the Translator's user_config). Both deployments load their model in
`reconfigure` (called with the user_config before the replica serves), so a model that cannot be
loaded fails the deploy with its cause, and `check_health` fails while no model is loaded.

Contract (rayserve_pulumi.serve_apps.contract): a non-empty JSON string of at most 10,000 characters;
anything else is a 4xx with {"error": ...}.
"""
from ray import serve
from ray.serve.handle import DeploymentHandle
from starlette.requests import Request
from starlette.responses import JSONResponse

from rayserve_pulumi.serve_apps.contract import BadRequest, read_json, typed_user_config
from rayserve_pulumi.serve_apps.seq2seq import Seq2Seq
from rayserve_pulumi.serve_apps.user_configs import SummarizerConfig, TranslatorConfig
LANGUAGES = {"french": "French", "german": "German", "romanian": "Romanian"}  # T5's translation prefixes
MAX_TEXT = 10_000


class _Loaded:
    """Holds one Seq2Seq model, (re)loaded when user_config names another."""

    def __init__(self):
        self.model = None

    def _load(self, name: str) -> None:
        if self.model is None or self.model.name != name:
            self.model = Seq2Seq(name)

    def check_health(self):
        if self.model is None:
            raise RuntimeError("no model loaded")


@serve.deployment(ray_actor_options={"num_cpus": 0.1})
class Translator(_Loaded):
    def __init__(self):
        super().__init__()
        self.language = "french"

    def reconfigure(self, config: TranslatorConfig):
        config = typed_user_config(TranslatorConfig, config)
        self._load(config.model)
        self.language = (config.language or self.language).lower()

    def translate(self, text: str) -> str:
        return self.model.generate(f"translate English to {LANGUAGES[self.language]}: {text}", max_new_tokens=40)


@serve.deployment(ray_actor_options={"num_cpus": 0.1})
class Summarizer(_Loaded):
    def __init__(self, translator: DeploymentHandle):
        super().__init__()
        self.translator = translator

    def reconfigure(self, config: SummarizerConfig):
        self._load(typed_user_config(SummarizerConfig, config).model)

    def summarize(self, text: str) -> str:
        return self.model.generate(f"summarize: {text}", max_new_tokens=30)

    async def __call__(self, request: Request) -> JSONResponse:
        try:
            text = await read_json(request)
            if not isinstance(text, str) or not text.strip():
                raise BadRequest(422, "expected a non-empty JSON string of English text")
            if len(text) > MAX_TEXT:
                raise BadRequest(413, f"text longer than {MAX_TEXT} characters")
        except BadRequest as bad:
            return bad.response()
        return JSONResponse(await self.translator.translate.remote(self.summarize(text)))


app = Summarizer.bind(Translator.bind())

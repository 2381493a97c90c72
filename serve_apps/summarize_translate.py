"""Summarise English text, then translate the summary (language and model from user_config)."""
from ray import serve
from ray.serve.handle import DeploymentHandle
from starlette.requests import Request
from starlette.responses import JSONResponse

from rayserve_pulumi.serve_apps.text_models import load_pipeline, translation_task

DEFAULT_MODEL = "t5-small"


class _LazyPipeline:
    """Holds one pipeline, (re)loaded on first use after a config change."""

    def __init__(self):
        self.model = DEFAULT_MODEL
        self._pipe = None
        self._task = None

    def _set(self, task: str, model: str):
        if (task, model) != (self._task, self.model):
            self._task, self.model, self._pipe = task, model, None

    def _get(self):
        if self._pipe is None:
            self._pipe = load_pipeline(self._task, self.model)
        return self._pipe

    def check_health(self):
        return None


@serve.deployment(ray_actor_options={"num_cpus": 0.1})
class Translator(_LazyPipeline):
    def __init__(self):
        super().__init__()
        self.language = "french"
        self._set(translation_task(self.language), self.model)

    def reconfigure(self, config: dict):
        self.language = config.get("language", self.language)
        self._set(translation_task(self.language), config.get("model", self.model))

    def translate(self, text: str) -> str:
        return self._get()(text)[0]["translation_text"]


@serve.deployment(ray_actor_options={"num_cpus": 0.1})
class Summarizer(_LazyPipeline):
    def __init__(self, translator: DeploymentHandle):
        super().__init__()
        self.translator = translator
        self._set("summarization", self.model)

    def reconfigure(self, config: dict):
        self._set("summarization", config.get("model", self.model))

    def summarize(self, text: str) -> str:
        return self._get()(text, min_length=5, max_length=15)[0]["summary_text"]

    async def __call__(self, request: Request) -> JSONResponse:
        text = await request.json()
        return JSONResponse(await self.translator.translate.remote(self.summarize(str(text))))


app = Summarizer.bind(Translator.bind())

"""Lazy loading of the text pipelines used by /summarize_translate.

`load_pipeline` is the real loading code: a Hugging Face `transformers.pipeline` for a model
name (resolved through HF_HOME, which the image points at the model-cache volume) or a local
directory. The only other value accepted is STAND_IN, a clearly marked deterministic stand-in
for machines that can neither download nor hold a model; it is never the default.
"""
from __future__ import annotations

STAND_IN = "stand-in"
LANGUAGE_CODES = {"french": "fr", "german": "de", "romanian": "ro"}

_STAND_IN_WORDS = {
    "fr": {"the": "le", "cat": "chat", "is": "est", "small": "petit", "house": "maison"},
    "de": {"the": "die", "cat": "Katze", "is": "ist", "small": "klein", "house": "Haus"},
    "ro": {"the": "", "cat": "pisica", "is": "este", "small": "mica", "house": "casa"},
}


class StandInPipeline:
    """NOT A MODEL: first-sentence summary and word-by-word dictionary translation."""

    def __init__(self, task: str):
        self.task = task

    def __call__(self, text: str, **_: object) -> list[dict]:
        if self.task == "summarization":
            first = text.strip().split(".")[0].strip()
            return [{"summary_text": first}]
        code = self.task.rsplit("_", 1)[-1]
        words = _STAND_IN_WORDS.get(code, {})
        out = " ".join(w for w in (words.get(t.lower(), t) for t in text.split()) if w)
        return [{"translation_text": out}]


def translation_task(language: str) -> str:
    """Map a user_config language name ("french") to a transformers task name."""
    try:
        return f"translation_en_to_{LANGUAGE_CODES[language.lower()]}"
    except KeyError:
        raise ValueError(f"language {language!r} not supported; use one of {sorted(LANGUAGE_CODES)}") from None


def load_pipeline(task: str, model: str):
    """Build the pipeline for `task` from `model` (hub name, local directory, or STAND_IN)."""
    if model == STAND_IN:
        return StandInPipeline(task)
    from transformers import pipeline  # imported lazily: the app deploys without torch loaded

    return pipeline(task, model=model)

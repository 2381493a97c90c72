"""A T5-style sequence-to-sequence model loaded with Hugging Face's model and tokenizer classes and run
with `generate` (no pipeline task: the pinned transformers has removed "summarization").

`model` in user_config is a Hugging Face model id (e.g. t5-small; weights land in HF_HOME, the model
cache volume on EKS and VMs), a directory, or the name of a directory under $RAYSERVE_MODELS (the local
platform points it at the models set-up generates, so nothing needs a model hub).
"""
from __future__ import annotations

import os
from pathlib import Path

MODELS_ENV = "RAYSERVE_MODELS"  # a folder of model directories the apps may load by name
MAX_INPUT_TOKENS = 512


def resolve(model: str) -> str:
    """A directory if `model` names one (directly or under $RAYSERVE_MODELS), else the model id itself.
    A path (absolute, or starting with . or ~) must be a directory: it is never sent to the hub."""
    if not isinstance(model, str) or not model:
        raise ValueError(f"user_config.model must be a model id or directory, not {model!r}")
    if Path(model).expanduser().is_dir():
        return str(Path(model).expanduser())
    if model.startswith(("/", ".", "~")):
        raise FileNotFoundError(f"model directory {model!r} does not exist")
    root = os.environ.get(MODELS_ENV)
    if root and (Path(root) / model).is_dir():
        return str(Path(root) / model)
    return model


class Seq2Seq:
    """One loaded model and its tokenizer; `load` raises with the cause when the model cannot be loaded."""

    def __init__(self, model: str):
        import torch
        from transformers import AutoModelForSeq2SeqLM, AutoTokenizer

        torch.set_num_threads(1)  # one replica, one core: replicas share the machine
        self.name = model
        try:
            path = resolve(model)
            self.tokenizer = AutoTokenizer.from_pretrained(path)
            self.model = AutoModelForSeq2SeqLM.from_pretrained(path)
        except Exception as exc:  # one line that names the model, whatever the loader raised
            cause = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise OSError(f"cannot load model {model!r}: {cause}") from exc
        self.model.eval()

    def generate(self, prompt: str, max_new_tokens: int) -> str:
        import torch

        inputs = self.tokenizer(prompt, return_tensors="pt", truncation=True, max_length=MAX_INPUT_TOKENS)
        with torch.no_grad():
            output = self.model.generate(**inputs, max_new_tokens=max_new_tokens)
        return self.tokenizer.decode(output[0], skip_special_tokens=True).strip()

"""Every seed app serves for real on the quick-start stack, and answers bad requests with a clear 4xx.

The text app runs the real Hugging Face code path (AutoTokenizer, AutoModelForSeq2SeqLM, generate) on
tiny-t5, a random T5-shaped model generated offline: the tests check the wiring (summarize feeds
translate, the language switches in place), not the quality of a translation.
"""
from __future__ import annotations

import pytest
import requests

from rayserve_pulumi.node_agent import ray_ops
from tests.conftest import with_override
from tests.helpers import replica_pids

pytestmark = pytest.mark.ray
SEED_SENTENCE = ("Ray Serve is a scalable model serving library for building online inference APIs. "
                 "It is framework-agnostic, so you can use a single toolkit to serve everything.")
SEED_REQUESTS = {"fruit": (["MANGO", 2], 6), "calc": (["MUL", 3], "15 pizzas please!")}


def _expected(models, text: str, language: str) -> str:
    """What the two deployments should answer, computed here with the same code and model."""
    import os

    from rayserve_pulumi.serve_apps.seq2seq import MODELS_ENV
    from rayserve_pulumi.serve_apps.summarize_translate import LANGUAGES, Summarizer, Translator

    os.environ[MODELS_ENV] = str(models)
    summarizer, translator = Summarizer.func_or_class(None), Translator.func_or_class()
    summarizer.reconfigure({"model": "tiny-t5"})
    translator.reconfigure({"model": "tiny-t5", "language": language})
    assert language in LANGUAGES
    return translator.translate(summarizer.summarize(text))


def test_every_url_up_reports_answers_its_seed_request(local_serve, tiny_models):
    urls = local_serve[1].outs["app_urls"]
    assert set(urls) == {"fruit", "calc", "summarize_translate"}
    for app, (body, answer) in SEED_REQUESTS.items():
        resp = requests.post(urls[app], json=body, timeout=30)
        assert (resp.status_code, resp.json()) == (200, answer)
    resp = requests.post(urls["summarize_translate"], json=SEED_SENTENCE, timeout=120)
    assert resp.status_code == 200 and isinstance(resp.json(), str)
    assert resp.json() == _expected(tiny_models, SEED_SENTENCE, "french")  # summarize fed translate


def test_language_switches_in_place_in_the_same_replicas(local_serve, tiny_models):
    provider, result = local_serve
    dash, url = result.outs["dashboard_url"], result.outs["app_urls"]["summarize_translate"]
    pids = replica_pids(dash, "summarize_translate", "Translator")
    german = _expected(tiny_models, SEED_SENTENCE, "german")
    assert german != _expected(tiny_models, SEED_SENTENCE, "french"), "the model cannot tell the languages apart"
    news = with_override(result.outs, "summarize_translate", "Translator",
                         user_config={"language": "german", "model": "tiny-t5"})
    updated = provider.update(result.id, result.outs, news).outs
    try:
        assert requests.post(url, json=SEED_SENTENCE, timeout=120).json() == german
        assert replica_pids(dash, "summarize_translate", "Translator") == pids
    finally:
        provider.update(result.id, updated, result.outs)


def test_a_model_that_cannot_be_loaded_fails_the_deploy_with_its_cause_and_is_rolled_back(local_serve):
    from rayserve_pulumi.local.lifecycle import RolledBack

    provider, result = local_serve
    news = with_override(result.outs, "summarize_translate", "Summarizer",
                         user_config={"model": "/nonexistent/tiny-t5"})
    with pytest.raises(RolledBack) as failed:
        provider.update(result.id, result.outs, {**news, "deploy_timeout_s": 180})
    assert ("summarize_translate.Summarizer: OSError: cannot load model '/nonexistent/tiny-t5': "
            "model directory '/nonexistent/tiny-t5' does not exist") in str(failed.value)
    assert str(failed.value).endswith(f"rolled back: the previous config {result.outs['config_hash']} is serving")
    # the previous config is back: RUNNING, and the model that loads answers
    assert ray_ops.status(result.outs["dashboard_url"])["applications"]["summarize_translate"]["status"] == "RUNNING"
    assert requests.post(result.outs["app_urls"]["summarize_translate"], json="The cat is small.",
                         timeout=120).status_code == 200


def test_check_health_fails_while_no_model_is_loaded():
    from rayserve_pulumi.serve_apps.summarize_translate import Summarizer, Translator

    for replica in (Summarizer.func_or_class(None), Translator.func_or_class()):
        with pytest.raises(RuntimeError, match="no model loaded"):
            replica.check_health()


F, C, T = "fruit", "calc", "summarize_translate"
BIG = "x" * (64 * 1024 + 1)
# (app, method, raw body or JSON, status, words the error must contain)
BAD_REQUESTS = [
    (F, "GET", None, 405, "method GET not allowed"),
    (F, "PUT", ["MANGO", 1], 405, "method PUT not allowed"),
    (F, "POST", b"", 400, "empty body"),
    (F, "POST", b"[MANGO, 2]", 400, "not valid JSON"),
    (F, "POST", b'["MANGO", NaN]', 400, "not valid JSON"),
    (F, "POST", b'["MANGO", Infinity]', 400, "not valid JSON"),
    (F, "POST", b"\xff\xfe", 400, "not valid JSON"),
    (F, "POST", ["MANGO"], 422, "expected a JSON array [fruit, amount]"),
    (F, "POST", ["MANGO", 1, 2], 422, "expected a JSON array [fruit, amount]"),
    (F, "POST", {"fruit": "MANGO", "amount": 1}, 422, "expected a JSON array [fruit, amount]"),
    (F, "POST", "MANGO", 422, "expected a JSON array"),
    (F, "POST", ["MANGO", "two"], 422, "amount must be a number"),
    (F, "POST", ["MANGO", "2"], 422, "amount must be a number"),
    (F, "POST", ["MANGO", True], 422, "amount must be a number"),
    (F, "POST", ["MANGO", None], 422, "amount must be a number"),
    (F, "POST", ["MANGO", -3], 422, "amount must be a number from 0"),
    (F, "POST", ["MANGO", 1e300], 422, "amount must be a number from 0"),
    (F, "POST", ["KIWI", 1], 422, "unknown fruit 'KIWI'"),
    (F, "POST", [7, 1], 422, "fruit must be a string"),
    (F, "POST", BIG.encode(), 413, "body larger than"),
    (C, "GET", None, 405, "method GET not allowed"),
    (C, "POST", b"{", 400, "not valid JSON"),
    (C, "POST", ["MUL", "3"], 422, "value must be a number"),
    (C, "POST", ["MUL", True], 422, "value must be a number"),
    (C, "POST", ["DIV", 3], 422, "unknown operation 'DIV'"),
    (C, "POST", [None, 3], 422, "operation must be a string"),
    (C, "POST", ["ADD"], 422, "expected a JSON array [operation, value]"),
    (C, "POST", ["ADD", 1e12], 422, "value must be a number from"),
    (T, "GET", None, 405, "method GET not allowed"),
    (T, "POST", b"", 400, "empty body"),
    (T, "POST", b"not json", 400, "not valid JSON"),
    (T, "POST", ["some", "text"], 422, "expected a non-empty JSON string"),
    (T, "POST", 42, 422, "expected a non-empty JSON string"),
    (T, "POST", "   ", 422, "expected a non-empty JSON string"),
    (T, "POST", "word " * 2001, 413, "text longer than"),
]


def test_bad_requests_get_a_clear_4xx(local_serve):
    urls = local_serve[1].outs["app_urls"]
    failures = []
    for app, method, body, status, words in BAD_REQUESTS:
        kwargs = {"data": body} if isinstance(body, bytes) else {} if body is None else {"json": body}
        resp = requests.request(method, urls[app], timeout=60, **kwargs)
        try:
            error = resp.json()["error"]
        except (ValueError, KeyError, TypeError):
            error = f"<not a JSON error: {resp.text[:80]!r}>"
        if resp.status_code != status or words not in error:
            failures.append(f"{app} {method} {str(body)[:40]!r}: {resp.status_code} {error!r}, want {status} {words!r}")
    assert failures == [], "\n".join(failures)
    assert len(BAD_REQUESTS) >= 25
    # good requests still answer (the contract refuses only what is wrong)
    assert requests.post(urls[F], json=["mango", 0.5], timeout=30).json() == 1.5
    assert requests.post(urls[C], json=["add", -4], timeout=30).json() == "-1 pizzas please!"


def test_concurrent_mixed_orders_each_get_their_own_price(local_serve):
    """The market coalesces concurrent orders per stand (one handle call per stand and batch): 96 orders over
    16 connections, every fruit and several amounts, each answered with its own stand's price × amount."""
    from concurrent.futures import ThreadPoolExecutor

    url = local_serve[1].outs["app_urls"]["fruit"]
    prices = {"MANGO": 3, "ORANGE": 2, "PEAR": 4}  # serve_config.yaml's user_config
    orders = [(fruit, amount) for amount in (0, 1, 2.5, 7, 10, 1000, 3, 0.5) for fruit in prices] * 4

    def order(body):
        resp = requests.post(url, json=list(body), timeout=30)
        return resp.status_code, resp.json()

    with ThreadPoolExecutor(16) as pool:
        answers = list(pool.map(order, orders))
    assert answers == [(200, prices[f] * a) for f, a in orders]

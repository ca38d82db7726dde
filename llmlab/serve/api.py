"""An OpenAI-compatible HTTP API over :class:`~llmlab.serve.async_engine.AsyncEngine` (FastAPI).

Endpoints: ``GET /health``, ``GET /v1/models``, ``POST /v1/completions``, ``POST /v1/chat/completions``
(the prompt is built by the tokenizer's chat template; a message's content may be a list of OpenAI
content parts: text, and images for a vision-language model, see :mod:`.vision_backend`). ``"stream": true`` answers with server-sent events,
one ``data: {chunk}`` per piece of text in OpenAI's chunk format, then ``data: [DONE]``.

Parameters: ``max_tokens`` (chat: also ``max_completion_tokens``), ``temperature``, ``top_p``, ``n``,
``presence_penalty`` and ``frequency_penalty`` (-2..2, over the generated tokens, OpenAI's definition),
``stop`` (a string or up to 4), ``seed``, ``logprobs`` (completions: an int; chat: ``logprobs: true`` +
``top_logprobs``), ``stream_options.include_usage``; vLLM's extensions ``top_k``, ``min_p``,
``repetition_penalty``, ``ignore_eos``. Every answer has ``usage`` and each choice a ``finish_reason``
(``stop`` or ``length``). With a draft model (``--draft``), ``usage.speculative`` holds the request's
``draft_tokens``, ``accepted_tokens`` and ``acceptance_rate``, and ``/health`` the engine's totals.

A client that disconnects is cancelled, its KV blocks freed: a stream when a write fails, a non-streaming
request by polling ``Request.is_disconnected`` while it waits (nothing is written to it before the end).

Errors have OpenAI's body ``{"error": {"message", "type", "param", "code"}}``: 400 for malformed JSON, a
missing or out-of-range parameter or a prompt that does not fit the context (code
``context_length_exceeded``), 401 for a wrong API key (when the server has one), 404 for an unknown model,
429 when ``max_queue`` requests are already in flight, 503 if the engine is down.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from contextlib import asynccontextmanager
from typing import Literal

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field

from .async_engine import AsyncEngine, EngineDead, QueueFull
from .request import SamplingParams
from .vision_backend import text_only


# -- request bodies ----------------------------------------------------------------------------------------
class StreamOptions(BaseModel):
    include_usage: bool = False


class _Common(BaseModel):
    model_config = ConfigDict(extra="ignore")
    model: str
    temperature: float = Field(1.0, ge=0.0, le=2.0)
    top_p: float = Field(1.0, gt=0.0, le=1.0)
    n: int = Field(1, ge=1, le=16)
    stream: bool = False
    stream_options: StreamOptions | None = None
    stop: str | list[str] | None = None
    seed: int | None = None
    presence_penalty: float = Field(0.0, ge=-2.0, le=2.0)
    frequency_penalty: float = Field(0.0, ge=-2.0, le=2.0)
    top_k: int = Field(0, ge=0)
    min_p: float = Field(0.0, ge=0.0, le=1.0)
    repetition_penalty: float = Field(1.0, gt=0.0, le=10.0)
    ignore_eos: bool = False
    user: str | None = None


class CompletionRequest(_Common):
    prompt: str | list[str] | list[int]
    max_tokens: int | None = Field(16, ge=1)
    logprobs: int | None = Field(None, ge=0, le=20)
    echo: bool = False


class ContentPart(BaseModel):  # OpenAI's content parts: {"type": "text", "text": ...} or an image_url {"url": ...}
    model_config = ConfigDict(extra="ignore")
    type: Literal["text", "image_url"]
    text: str | None = None
    image_url: dict | None = None


class ChatMessage(BaseModel):
    role: Literal["system", "user", "assistant"]
    content: str | list[ContentPart]


class ChatRequest(_Common):
    messages: list[ChatMessage] = Field(min_length=1)
    max_tokens: int | None = Field(None, ge=1)
    max_completion_tokens: int | None = Field(None, ge=1)
    logprobs: bool = False
    top_logprobs: int | None = Field(None, ge=0, le=20)


class APIError(Exception):
    def __init__(self, status: int, message: str, type: str = "invalid_request_error", param: str | None = None,
                 code: str | None = None):
        self.status, self.message, self.type, self.param, self.code = status, message, type, param, code


def error_response(status, message, type="invalid_request_error", param=None, code=None) -> JSONResponse:
    return JSONResponse({"error": {"message": message, "type": type, "param": param, "code": code}}, status)


class _KeyCheck:
    """``Authorization: Bearer KEY`` on ``/v1/*``, else 401. A plain ASGI middleware: Starlette's
    ``BaseHTTPMiddleware`` (``@app.middleware``) hides the client's disconnect from the endpoints."""

    def __init__(self, app, api_key: str):
        self.app, self.expected = app, f"Bearer {api_key}".encode()

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http" and scope["path"].startswith("/v1") and \
                dict(scope["headers"]).get(b"authorization", b"") != self.expected:
            resp = error_response(401, "Incorrect or missing API key.", "authentication_error", code="invalid_api_key")
            return await resp(scope, receive, send)
        await self.app(scope, receive, send)


# -- the app -------------------------------------------------------------------------------------------------
def create_app(engine: AsyncEngine, model_name: str, api_key: str | None = None) -> FastAPI:
    tokenizer, max_len = engine.engine.tokenizer, engine.engine.max_model_len

    @asynccontextmanager
    async def lifespan(app):
        await engine.start()
        yield
        await engine.stop()

    app = FastAPI(title="llmlab.serve", lifespan=lifespan)
    app.state.engine = engine

    if api_key:
        app.add_middleware(_KeyCheck, api_key=api_key)

    @app.exception_handler(RequestValidationError)
    async def on_validation(request, exc: RequestValidationError):
        err = exc.errors()[0] if exc.errors() else {}
        if err.get("type") == "json_invalid":
            return error_response(400, f"Invalid JSON body: {err.get('ctx', {}).get('error', '')}".strip(),
                                  code="invalid_json")
        loc = [str(x) for x in err.get("loc", ()) if x != "body"]
        param = ".".join(loc) or None
        return error_response(400, f"{param}: {err.get('msg', 'invalid value')}", param=param, code="invalid_value")

    @app.exception_handler(APIError)
    async def on_api_error(request, exc: APIError):
        return error_response(exc.status, exc.message, exc.type, exc.param, exc.code)

    @app.get("/health")
    async def health():
        if engine.error is not None:
            return error_response(503, f"engine failed: {engine.error!r}", "server_error")
        bm = engine.engine.block_manager
        body = {"status": "ok", "requests_in_flight": engine.num_in_flight, "kv_blocks_free": bm.num_free,
                "kv_blocks_total": bm.num_blocks}
        spec = getattr(engine.engine, "spec", None)
        if spec is not None:                       # speculative decoding since the start: the engine's totals
            st = spec.stats
            body["speculative"] = {"num_speculative_tokens": spec.k, "draft_tokens": st.proposed,
                                   "accepted_tokens": st.accepted, "acceptance_rate": st.acceptance_rate,
                                   "tokens_per_round": (st.accepted + st.rounds) / max(st.rounds, 1)}
        return body

    @app.get("/v1/models")
    async def models():
        return {"object": "list", "data": [{"id": model_name, "object": "model", "created": 0,
                                            "owned_by": "llmlab", "max_model_len": max_len}]}

    @app.post("/v1/completions")
    async def completions(req: CompletionRequest, raw: Request):
        _check_model(req.model)
        prompt = req.prompt
        if isinstance(prompt, list) and prompt and isinstance(prompt[0], int):
            prompt_ids = list(prompt)
        elif isinstance(prompt, list):
            if len(prompt) != 1:
                raise APIError(400, "one prompt per request is supported here", param="prompt")
            prompt_ids = tokenizer.encode(prompt[0], add_special_tokens=False)
        else:
            prompt_ids = tokenizer.encode(prompt, add_special_tokens=False)
        if prompt_ids and (min(prompt_ids) < 0 or max(prompt_ids) >= len(tokenizer)):
            raise APIError(400, "prompt token ids out of the vocabulary", param="prompt")
        params = _params(req, req.max_tokens, len(prompt_ids), "prompt", req.logprobs)
        return await _respond(req, prompt_ids, params, chat=False, raw=raw)

    @app.post("/v1/chat/completions")
    async def chat(req: ChatRequest, raw: Request):
        _check_model(req.model)
        messages = [m.model_dump(exclude_none=True) for m in req.messages]
        vision = getattr(engine.engine, "encode_chat", None)  # a VLM (vision_backend.py): image parts -> image tokens
        try:
            prompt_ids = vision(messages) if vision else tokenizer.apply_chat_template(
                text_only(messages), add_generation_prompt=True, tokenize=True, return_dict=False)
        except Exception as e:                    # the template refuses (roles out of order, ...)
            raise APIError(400, f"chat template: {e}", param="messages")
        if isinstance(prompt_ids, dict) or hasattr(prompt_ids, "input_ids"):
            prompt_ids = prompt_ids["input_ids"]
        logprobs = (req.top_logprobs or 0) if req.logprobs else None
        params = _params(req, req.max_completion_tokens or req.max_tokens, len(prompt_ids), "messages", logprobs)
        return await _respond(req, list(prompt_ids), params, chat=True, raw=raw)

    # -- helpers -----------------------------------------------------------------------------------------
    def _check_model(name: str):
        if name != model_name:
            raise APIError(404, f"The model '{name}' does not exist; this server serves '{model_name}'.",
                           param="model", code="model_not_found")

    def _params(req, max_tokens, prompt_len, prompt_param, logprobs) -> SamplingParams:
        stop = [req.stop] if isinstance(req.stop, str) else list(req.stop or [])
        if len(stop) > 4:
            raise APIError(400, "at most 4 stop sequences", param="stop")
        if prompt_len == 0:
            raise APIError(400, "the prompt is empty", param=prompt_param)
        if max_tokens is None:
            max_tokens = max_len - prompt_len
        if prompt_len + max(max_tokens, 1) > max_len:
            raise APIError(400, f"This model's maximum context length is {max_len} tokens. However, you requested "
                           f"{prompt_len + max_tokens} tokens ({prompt_len} in the prompt, {max_tokens} for the "
                           f"completion). Please reduce the prompt or max_tokens.", param=prompt_param,
                           code="context_length_exceeded")
        return SamplingParams(max_tokens=max_tokens, temperature=req.temperature, top_p=req.top_p, top_k=req.top_k,
                              min_p=req.min_p, repetition_penalty=req.repetition_penalty, seed=req.seed,
                              presence_penalty=req.presence_penalty, frequency_penalty=req.frequency_penalty,
                              stop=tuple(stop), ignore_eos=req.ignore_eos, logprobs=logprobs)

    def _token_text(tid: int) -> str:
        return tokenizer.decode([tid])

    def _logprobs_json(chat: bool, toks, lps, offset0: int = 0):
        if chat:
            return {"content": [
                {"token": _token_text(t), "logprob": lp, "bytes": list(_token_text(t).encode()),
                 "top_logprobs": [{"token": _token_text(i), "logprob": v, "bytes": list(_token_text(i).encode())}
                                  for i, v in top]} for t, (lp, top) in zip(toks, lps)]}
        texts = [_token_text(t) for t in toks]
        offsets, o = [], offset0
        for s in texts:
            offsets.append(o)
            o += len(s)
        return {"tokens": texts, "token_logprobs": [lp for lp, _ in lps],
                "top_logprobs": [{_token_text(i): v for i, v in top} for _, top in lps], "text_offset": offsets}

    def _sub_params(params: SamplingParams, i: int) -> SamplingParams:
        if params.seed is None or i == 0:
            return params
        return SamplingParams(**{**params.__dict__, "seed": params.seed + i})   # n choices, n different samples

    async def _start(prompt_ids, params, n):
        """n engine streams merged into one queue of (choice index, output); raises QueueFull up front."""
        if engine.num_in_flight + n > engine.max_queue:
            raise APIError(429, f"the server is busy: {engine.num_in_flight} requests in flight "
                           f"(limit {engine.max_queue}); retry later", "rate_limit_error", code="rate_limit_exceeded")
        queue: asyncio.Queue = asyncio.Queue()

        async def pump(i):
            agen = engine.generate(prompt_ids, _sub_params(params, i))
            try:
                async for out in agen:
                    await queue.put((i, out))
            except BaseException as e:
                await queue.put((i, e))
                if isinstance(e, asyncio.CancelledError):
                    raise
            finally:
                await agen.aclose()

        tasks = [asyncio.create_task(pump(i)) for i in range(n)]
        return queue, tasks

    async def _events(queue, tasks, n):
        done = 0
        try:
            while done < n:
                i, out = await queue.get()
                if isinstance(out, QueueFull):
                    raise APIError(429, str(out), "rate_limit_error", code="rate_limit_exceeded")
                if isinstance(out, EngineDead):
                    raise APIError(503, str(out), "server_error", code="service_unavailable")
                if isinstance(out, ValueError):
                    raise APIError(400, str(out), param="prompt")
                if isinstance(out, BaseException):
                    raise APIError(500, f"internal error: {out!r}", "server_error")
                done += out.finished
                yield i, out
        finally:
            for t in tasks:
                t.cancel()

    async def _watch_disconnect(raw: Request, tasks, every: float = 0.05):
        """A non-streaming request has no write to fail when its client goes away: poll for the disconnect
        (as vLLM does) and cancel the engine streams, which aborts the requests and frees their KV blocks."""
        while not await raw.is_disconnected():
            await asyncio.sleep(every)
        for t in tasks:
            t.cancel()

    def _usage(n_prompt: int, n_completion: int, outs) -> dict:
        usage = {"prompt_tokens": n_prompt, "completion_tokens": n_completion, "total_tokens": n_prompt + n_completion}
        if getattr(engine.engine, "spec", None) is not None:        # speculative decoding: this request's figures
            drafted = sum(o.spec_proposed for o in outs if o is not None)
            accepted = sum(o.spec_accepted for o in outs if o is not None)
            usage["speculative"] = {"draft_tokens": drafted, "accepted_tokens": accepted,
                                    "acceptance_rate": accepted / drafted if drafted else None}
        return usage

    async def _respond(req, prompt_ids, params, chat: bool, raw: Request | None = None):
        if engine.error is not None:
            raise APIError(503, f"engine failed: {engine.error!r}", "server_error", code="service_unavailable")
        n, rid = req.n, ("chatcmpl-" if chat else "cmpl-") + uuid.uuid4().hex[:24]
        created, obj = int(time.time()), "chat.completion" if chat else "text_completion"
        queue, tasks = await _start(prompt_ids, params, n)
        events = _events(queue, tasks, n)
        if not req.stream:
            texts, toks, lps, reasons = [""] * n, [[] for _ in range(n)], [[] for _ in range(n)], [None] * n
            last = [None] * n
            watch = asyncio.create_task(_watch_disconnect(raw, tasks)) if raw is not None else None
            try:
                async for i, out in events:
                    texts[i] += out.new_text
                    toks[i] += out.new_token_ids
                    lps[i] += out.new_logprobs
                    reasons[i] = out.finish_reason if out.finished else None
                    last[i] = out
            finally:
                if watch is not None:
                    watch.cancel()
                await events.aclose()
            choices = []
            for i in range(n):
                lp = None if params.logprobs is None else _logprobs_json(chat, toks[i], lps[i])
                if chat:
                    choices.append({"index": i, "message": {"role": "assistant", "content": texts[i]},
                                    "logprobs": lp, "finish_reason": reasons[i]})
                else:
                    choices.append({"index": i, "text": texts[i], "logprobs": lp, "finish_reason": reasons[i]})
            completion = sum(len(t) for t in toks)
            return {"id": rid, "object": obj, "created": created, "model": model_name, "choices": choices,
                    "usage": _usage(len(prompt_ids), completion, last)}

        # stream: the first event is awaited here, so that errors known up front are still plain JSON errors
        include_usage = bool(req.stream_options and req.stream_options.include_usage)
        obj = "chat.completion.chunk" if chat else "text_completion"

        def chunk(choices, usage=None):
            body = {"id": rid, "object": obj, "created": created, "model": model_name, "choices": choices}
            if include_usage:
                body["usage"] = usage
            return f"data: {json.dumps(body)}\n\n"

        try:
            first = await events.__anext__()
        except BaseException:
            await events.aclose()
            raise

        async def sse():
            n_completion, sent_role, last = 0, set(), {}
            try:
                pending = [first]
                while True:
                    for i, out in pending:
                        n_completion += len(out.new_token_ids)
                        last[i] = out
                        reason = out.finish_reason if out.finished else None
                        lp = None
                        if params.logprobs is not None and out.new_token_ids:
                            lp = _logprobs_json(chat, out.new_token_ids, out.new_logprobs)
                        if chat:
                            delta = {"content": out.new_text}
                            if i not in sent_role:
                                delta["role"] = "assistant"
                                sent_role.add(i)
                            c = {"index": i, "delta": delta, "logprobs": lp, "finish_reason": reason}
                        else:
                            c = {"index": i, "text": out.new_text, "logprobs": lp, "finish_reason": reason}
                        if out.new_text or reason or lp:
                            yield chunk([c])
                    try:
                        pending = [await events.__anext__()]
                    except StopAsyncIteration:
                        break
                if include_usage:
                    yield chunk([], _usage(len(prompt_ids), n_completion, list(last.values())))
                yield "data: [DONE]\n\n"
            except APIError as e:                  # after the headers went out: an error event, then [DONE]
                yield f"data: {json.dumps({'error': {'message': e.message, 'type': e.type, 'param': e.param, 'code': e.code}})}\n\n"
                yield "data: [DONE]\n\n"
            finally:
                await events.aclose()

        return StreamingResponse(sse(), media_type="text/event-stream")

    return app

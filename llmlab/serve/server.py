"""Building a server from a model, and running it in the background for exactly as long as a ``with`` block.

::

    from llmlab.serve.server import build_app, running
    app = build_app("llama-chat")                       # zoo name or HF folder
    with running(app) as base_url:                      # a free loopback port; stopped (and joined) on exit
        client = openai.OpenAI(base_url=base_url + "/v1", api_key="none")
        ...

``running`` starts uvicorn in a thread of this process, waits until it listens, and on exit asks it to shut
down and joins the thread, so a notebook cell or a test leaves no server (and no process) behind.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time

import torch

from .api import create_app
from .async_engine import AsyncEngine
from .engine import LLMEngine, load_model
from .vision_backend import VisionEngine, is_vision_model


def build_app(model: str, served_name: str | None = None, api_key: str | None = None, max_queue: int = 256,
              num_blocks: int = 256, block_size: int = 16, max_num_seqs: int = 64, max_num_batched_tokens: int = 512,
              dtype=torch.float32, device: str = "cpu", backend: str = "engine", draft: str | None = None,
              num_speculative_tokens: int = 4, **engine_kwargs):
    """The FastAPI app serving ``model`` (zoo name or HF folder) with the course engine, or with plain
    ``transformers.generate`` one request at a time (``backend="hf"``, for comparison). ``draft``: a zoo
    name or folder of a draft model (same tokenizer): the engine decodes speculatively,
    ``num_speculative_tokens`` proposals per step.
    A vision-language model (``food-vlm``, a LLaVA folder) is served by :class:`~.vision_backend.VisionEngine`
    whatever the backend (no draft)."""
    name = served_name or (model if not os.path.isdir(model) else os.path.basename(os.path.normpath(model)))
    if is_vision_model(model):
        return create_app(AsyncEngine(VisionEngine.from_pretrained(model, dtype, device), max_queue=max_queue), name,
                          api_key)
    m, tok, path = load_model(model, dtype, device)
    if draft:
        if backend != "engine":
            raise ValueError("speculative decoding (draft=...) needs the course engine (backend='engine')")
        d, dtok, _ = load_model(draft, dtype, device)
        if dtok.get_vocab() != tok.get_vocab():
            raise ValueError(f"the draft {draft!r} does not use the tokenizer of {model!r}")
        engine_kwargs.update(draft_model=d, num_speculative_tokens=num_speculative_tokens)
    if backend == "hf":
        from .hf_backend import HFGenerateEngine
        engine = HFGenerateEngine(m, tok)
    elif backend == "engine":
        engine = LLMEngine(m, tok, num_blocks=num_blocks, block_size=block_size, max_num_seqs=max_num_seqs,
                           max_num_batched_tokens=max_num_batched_tokens, **engine_kwargs)
    else:
        raise ValueError(f"unknown backend {backend!r}: 'engine' or 'hf'")
    return create_app(AsyncEngine(engine, max_queue=max_queue), name, api_key)


@contextlib.contextmanager
def running(app, host: str = "127.0.0.1", port: int = 0, timeout: float = 30.0):
    """Serve ``app`` on ``host:port`` (0: a free port) in a background thread; yields ``http://host:port``."""
    import uvicorn

    config = uvicorn.Config(app, host=host, port=port, log_level="error", lifespan="on", access_log=False)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="llmlab-serve", daemon=True)
    thread.start()
    deadline = time.monotonic() + timeout
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            server.should_exit = True
            raise RuntimeError("the server did not start (port in use?)")
        time.sleep(0.02)
    bound = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://{host}:{bound}"
    finally:
        server.should_exit = True
        thread.join(timeout)

"""A request as the engine sees it: sampling parameters and the growing token sequence.

``SamplingParams`` is what an API call asks for (OpenAI's names where they exist). ``Sequence`` is one
generation in flight: the prompt and output token ids, the KV-cache blocks that hold its keys and values
(``block_table``), how many of its tokens already have their K/V in the cache (``num_computed``), and its
own random generator, so that a seeded request samples the same tokens whatever else shares its batch.
"""

from __future__ import annotations

import itertools
import random
import time
from dataclasses import dataclass, field
from enum import Enum

import torch


@dataclass
class SamplingParams:
    max_tokens: int = 16
    temperature: float = 1.0          # 0: greedy (argmax)
    top_p: float = 1.0                # nucleus: keep the smallest set of tokens whose probability reaches top_p
    top_k: int = 0                    # 0: off
    min_p: float = 0.0                # keep tokens with p >= min_p * p_max
    repetition_penalty: float = 1.0   # CTRL-style, as transformers' RepetitionPenaltyLogitsProcessor
    presence_penalty: float = 0.0     # OpenAI's: minus this for every token already generated
    frequency_penalty: float = 0.0    # OpenAI's: minus this times how often the token was generated
    seed: int | None = None
    stop: tuple[str, ...] = ()        # stop strings (matched on the decoded text, across token boundaries)
    stop_token_ids: tuple[int, ...] = ()
    ignore_eos: bool = False
    logprobs: int | None = None       # None: no log-probabilities; k >= 0: the chosen token's and the top k

    @property
    def greedy(self) -> bool:
        return self.temperature == 0.0


class Status(Enum):
    WAITING = "waiting"
    RUNNING = "running"
    FINISHED = "finished"


_ids = itertools.count()


@dataclass
class Sequence:
    prompt_ids: list[int]
    params: SamplingParams = field(default_factory=SamplingParams)
    request_id: str = ""
    output_ids: list[int] = field(default_factory=list)
    status: Status = Status.WAITING
    block_table: list[int] = field(default_factory=list)    # physical block ids, one per block_size tokens
    block_hashes: list[int | None] = field(default_factory=list)  # prefix hash of each full block (None: not yet)
    num_computed: int = 0            # tokens whose K/V are in the cache
    finish_reason: str | None = None  # "stop" | "length" | "abort"
    logprobs: list[tuple[float, list[tuple[int, float]]]] = field(default_factory=list)
    num_preemptions: int = 0
    draft_computed: int = 0          # speculative decoding: tokens whose K/V are in the draft's cache
    spec_proposed: int = 0           # draft tokens proposed for this sequence, and accepted by the target
    spec_accepted: int = 0
    arrival_time: float = field(default_factory=time.perf_counter)
    first_token_time: float | None = None
    seq_id: int = field(default_factory=lambda: next(_ids))
    generator: torch.Generator = field(init=False, repr=False)

    def __post_init__(self):
        self.request_id = self.request_id or f"seq-{self.seq_id}"
        seed = self.params.seed if self.params.seed is not None else random.getrandbits(63)
        self.generator = torch.Generator().manual_seed(seed)

    @property
    def tokens(self) -> list[int]:
        return self.prompt_ids + self.output_ids

    def __len__(self) -> int:
        return len(self.prompt_ids) + len(self.output_ids)

    @property
    def num_uncomputed(self) -> int:
        """Tokens still to run through the model: the whole prompt at first, then 1 per decode step."""
        return len(self) - self.num_computed

    @property
    def finished(self) -> bool:
        return self.status is Status.FINISHED

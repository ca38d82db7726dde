"""llmlab.train.Trainer with pieces built elsewhere: a custom loss_fn, a model with a scalar head, a frozen
base (as under LoRA), a transformers model, padded batches with a masked loss, and resuming such a run."""

import itertools

import pytest
import torch
import torch.nn as nn

from llmlab.models.gpt import GPT, GPTConfig, GPTModel
from llmlab.train import RandomWindows, TrainConfig, Trainer
from llmlab.train.optim import cross_entropy

SMALL = GPTConfig(vocab_size=12, block_size=8, n_layer=1, n_head=2, n_embd=16)


def cfg(**kw):
    return TrainConfig(**{**dict(out_dir=None, max_steps=40, batch_size=8, max_lr=1e-2, eval_interval=20,
                                 eval_batches=2, progress=False, device="cpu", seed=0), **kw})


class RewardModel(nn.Module):
    """A scalar head on the base model: the score of a sequence is read at its last token."""

    def __init__(self):
        super().__init__()
        self.base, self.score = GPTModel(SMALL), nn.Linear(SMALL.n_embd, 1)

    def forward(self, idx):
        return self.score(self.base(idx).last_hidden_state[:, -1]).squeeze(-1)  # (B,)


def preference_pairs(seed):
    """Endless (chosen, rejected) batches: chosen sequences hold token 1 more often (a rule to learn)."""
    g = torch.Generator().manual_seed(seed)
    while True:
        chosen = torch.where(torch.rand(8, 8, generator=g) < 0.6, 1, torch.randint(2, 12, (8, 8), generator=g))
        rejected = torch.where(torch.rand(8, 8, generator=g) < 0.1, 1, torch.randint(2, 12, (8, 8), generator=g))
        yield chosen, rejected


def bradley_terry(model, batch):
    chosen, rejected = batch
    margin = model(chosen) - model(rejected)
    return -torch.nn.functional.logsigmoid(margin).mean(), {"accuracy": (margin > 0).float().mean().item()}


def test_custom_loss_and_a_scalar_head():
    torch.manual_seed(0)
    held_out = list(itertools.islice(preference_pairs(99), 4))
    t = Trainer(cfg(), model=RewardModel(), batches=preference_pairs(1), loss_fn=bradley_terry,
                eval_sets={"val": lambda: held_out}, log=None)
    t.run()
    h = t.history
    assert h["iter"] == [0, 20, 40] and len(h["step_loss"]) == 40
    # ln 2 = 0.693 at a random init (margins ~0); the rule is easy: well under it after 40 steps
    assert h["val_loss"][0] == pytest.approx(0.693, abs=0.05) and h["val_loss"][-1] < 0.4
    assert t.last_eval["val_accuracy"] > 0.9  # loss_fn's extra metric, averaged over the eval batches


def test_a_frozen_base_stays_frozen_and_a_hf_model_trains():
    transformers = pytest.importorskip("transformers")
    hf = transformers.GPT2LMHeadModel(transformers.GPT2Config(vocab_size=12, n_positions=8, n_embd=16, n_layer=1,
                                                              n_head=2)).train()
    for name, p in hf.named_parameters():
        p.requires_grad = name.startswith("transformer.h.0.mlp")  # train one MLP, as an adapter would
    frozen = hf.transformer.wte.weight.detach().clone()
    data = torch.arange(400) % 6  # 0 1 2 3 4 5 0 1 ...: each next token is determined
    t = Trainer(cfg(block_size=8), model=hf, batches=RandomWindows(data, 8, 8, seed=0),
                eval_sets={"val": RandomWindows(data, 8, 8).fixed(2, seed=1)}, log=None)
    t.run()  # the default loss reads out.logits
    assert torch.equal(hf.transformer.wte.weight, frozen)
    assert t.history["val_loss"][-1] < t.history["val_loss"][0] - 0.3


def masked_lm_loss(model, batch):
    """SFT: padded batches, the loss on response tokens only (labels -100 elsewhere)."""
    return cross_entropy(model(batch["input_ids"], attention_mask=batch["attention_mask"]).logits.float(),
                         batch["labels"])


def test_padded_batches_with_a_masked_loss():
    torch.manual_seed(0)
    ids = torch.randint(0, 12, (8, 8))
    mask = torch.ones(8, 8, dtype=torch.long)
    mask[:, 6:] = 0  # two padding tokens at the end of every row
    labels = torch.full((8, 8), -100)
    labels[:, 2:5] = ids[:, 3:6]  # the "response": predict tokens 3..5
    batch = {"input_ids": ids, "attention_mask": mask, "labels": labels}
    t = Trainer(cfg(max_steps=30), model=GPT(SMALL), batches=itertools.repeat(batch), loss_fn=masked_lm_loss,
                eval_sets={"val": lambda: [batch]}, log=None)
    t.run()
    # 24 labelled tokens of one batch, being memorised: from ln 12 = 2.48 at init to well under half of it
    assert t.history["val_loss"][0] == pytest.approx(2.48, abs=0.1) and t.history["val_loss"][-1] < 1.2


def test_resume_with_batches_built_elsewhere_is_bit_for_bit(tmp_path):
    data = torch.randint(0, 12, (500,), generator=torch.Generator().manual_seed(0))

    def trainer(out, **kw):
        torch.manual_seed(0)
        return Trainer(cfg(out_dir=str(out), max_steps=6, ckpt_interval=2, dropout=0.1), model=GPT(SMALL),
                       batches=RandomWindows(data, 8, 4, seed=3), log=None, **kw)

    full = trainer(tmp_path / "a")
    full.run()
    trainer(tmp_path / "b").run(stop_at=4)
    resumed = trainer(tmp_path / "b", resume=True)  # a fresh model, stream and RNGs, restored from ckpt.pt
    assert resumed.step == 4
    resumed.run()
    assert all(torch.equal(a, b) for a, b in zip(full.model.state_dict().values(), resumed.model.state_dict().values()))

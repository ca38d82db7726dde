"""Week 2: token files, batches, loss, AdamW, schedule, clipping, and the resumable trainer.

Each piece is checked against PyTorch's own implementation; the trainer is checked for
bit-for-bit resume and for clear errors on bad input.
"""

import json
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from llmlab.train import cli as train_cli
from llmlab.train.optim import AdamW, clip_grad_norm, cross_entropy, lr_at
from llmlab.train.batches import TokenDataError, get_batch, prepare_dataset, read_tokens, write_tokens
from llmlab.train.config import ConfigError, TrainConfig, parse_override
from llmlab.train.trainer import CheckpointError, Trainer, atomic_torch_save



# ---------------------------------------------------------------------------------------------
# token files and batches


def test_memmap_round_trip(tmp_path):
    ids = np.random.default_rng(0).integers(0, 50257, size=1000)
    path = write_tokens(tmp_path / "t.bin", ids, vocab_size=50257)
    back = read_tokens(path)
    assert back.dtype == np.uint16 and path.stat().st_size == 2 * len(ids)  # 2 bytes a token, no header
    np.testing.assert_array_equal(back, ids)
    assert not list(tmp_path.glob("*.tmp"))  # the temporary file was renamed away


def test_write_tokens_refuses_bad_input(tmp_path):
    with pytest.raises(TokenDataError, match="does not fit in uint16"):
        write_tokens(tmp_path / "t.bin", [1, 2, 3], vocab_size=100_000)
    with pytest.raises(TokenDataError, match=r"must lie in \[0, 10\)"):
        write_tokens(tmp_path / "t.bin", [1, 2, 10], vocab_size=10)
    with pytest.raises(TokenDataError, match="no tokens"):
        write_tokens(tmp_path / "t.bin", [], vocab_size=10)
    with pytest.raises(TokenDataError, match="corpus is empty"):
        prepare_dataset("", tmp_path / "d")
    (tmp_path / "odd.bin").write_bytes(b"\x01\x02\x03")
    with pytest.raises(TokenDataError, match="not a whole number"):
        read_tokens(tmp_path / "odd.bin")
    (tmp_path / "empty.bin").write_bytes(b"")
    with pytest.raises(TokenDataError, match="empty"):
        read_tokens(tmp_path / "empty.bin")
    assert not (tmp_path / "t.bin").exists()


def test_get_batch_windows_are_shifted_by_one():
    data = np.arange(1000, dtype=np.uint16)  # token i has value i: a window's start is its first value
    g = torch.Generator().manual_seed(0)
    x, y = get_batch(data, block_size=16, batch_size=8, generator=g)
    assert x.shape == y.shape == (8, 16) and x.dtype == y.dtype == torch.int64
    starts = torch.randint(1000 - 16, (8,), generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(x, starts[:, None] + torch.arange(16), rtol=0, atol=0)
    torch.testing.assert_close(y, x + 1, rtol=0, atol=0)
    with pytest.raises(TokenDataError, match="block_size"):
        get_batch(data[:16], block_size=16, batch_size=2)


# ---------------------------------------------------------------------------------------------
# loss, optimizer, schedule, clipping


def test_cross_entropy_matches_torch():
    torch.manual_seed(0)
    logits = torch.randn(4, 7, 11, requires_grad=True)
    targets = torch.randint(11, (4, 7))
    targets[0, :3] = -100
    ours = cross_entropy(logits, targets)
    ref = F.cross_entropy(logits.view(-1, 11), targets.view(-1))  # ignore_index=-100 by default
    torch.testing.assert_close(ours, ref)  # float32 defaults: ~1e-5 relative round-off in a few reductions
    g_ours, = torch.autograd.grad(ours, logits)
    g_ref, = torch.autograd.grad(ref, logits)
    torch.testing.assert_close(g_ours, g_ref)
    # another ignore value, and huge logits: a naive exp(1e4) would overflow to inf
    big = torch.randn(6, 5) * 1e4
    t = torch.tensor([0, 1, -1, 3, 4, -1])
    torch.testing.assert_close(cross_entropy(big, t, ignore_index=-1), F.cross_entropy(big, t, ignore_index=-1))
    assert math.isfinite(cross_entropy(big, t, ignore_index=-1).item())


def test_adamw_matches_torch_step_by_step():
    torch.manual_seed(0)
    w0 = [torch.randn(5, 3), torch.randn(3)]
    ours = [p.clone().requires_grad_() for p in w0]
    ref = [p.clone().requires_grad_() for p in w0]
    kw = dict(lr=1e-2, betas=(0.9, 0.95), eps=1e-8, weight_decay=0.1)
    opt = AdamW([{"params": ours[:1]}, {"params": ours[1:], "weight_decay": 0.0}], **kw)
    opt_ref = torch.optim.AdamW([{"params": ref[:1]}, {"params": ref[1:], "weight_decay": 0.0}], foreach=False, **kw)
    for step in range(5):
        grads = [torch.randn_like(p) for p in w0]
        for ps, o in ((ours, opt), (ref, opt_ref)):
            for p, g in zip(ps, grads):
                p.grad = g.clone()
            o.step()
        for a, b in zip(ours, ref):
            # same formula, same float32 operation order as torch's single-tensor path: we expect
            # equality; allow 1e-6 relative for a different rounding of (1 - beta^t) or the sqrt
            torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-7)
    # the same state layout as torch
    s, s_ref = opt.state[ours[0]], opt_ref.state[ref[0]]
    assert set(s) == set(s_ref) == {"step", "exp_avg", "exp_avg_sq"}
    assert s["step"].item() == s_ref["step"].item() == 5


def test_lr_schedule_edges():
    kw = dict(max_lr=1e-3, min_lr=1e-4, warmup=10, total=110)
    assert lr_at(0, **kw) == pytest.approx(1e-4)  # (0 + 1) / 10 of max_lr: the first step already moves
    assert lr_at(9, **kw) == pytest.approx(1e-3)  # the last warmup step reaches max_lr
    assert lr_at(10, **kw) == pytest.approx(1e-3)  # the cosine starts at max_lr
    assert lr_at(60, **kw) == pytest.approx(5.5e-4)  # half-way: (max + min) / 2
    assert lr_at(110, **kw) == pytest.approx(1e-4)  # the end of the cosine
    assert lr_at(10_000, **kw) == pytest.approx(1e-4)  # beyond: stays at min_lr
    assert lr_at(0, 1.0, 0.0, warmup=0, total=5) == 1.0  # no warmup
    lrs = [lr_at(s, **kw) for s in range(120)]
    assert all(a <= b for a, b in zip(lrs[:10], lrs[1:10])) and all(a >= b for a, b in zip(lrs[10:], lrs[11:]))
    with pytest.raises(ValueError):
        lr_at(0, 1.0, 0.0, warmup=10, total=5)


@pytest.mark.parametrize("max_norm", [0.5, 100.0])  # one case clips, the other does not
def test_clip_grad_norm_matches_torch(max_norm):
    torch.manual_seed(0)
    ours = [torch.nn.Parameter(torch.randn(4, 3)), torch.nn.Parameter(torch.randn(7))]
    ref = [torch.nn.Parameter(p.detach().clone()) for p in ours]
    for a, b in zip(ours, ref):
        a.grad = torch.randn_like(a)
        b.grad = a.grad.clone()
    n_ours = clip_grad_norm(ours, max_norm)
    n_ref = torch.nn.utils.clip_grad_norm_(ref, max_norm)
    torch.testing.assert_close(n_ours, n_ref)  # the pre-clip norm
    for a, b in zip(ours, ref):
        torch.testing.assert_close(a.grad, b.grad)


# ---------------------------------------------------------------------------------------------
# the trainer


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    text = "".join(chr(97 + (i * 7 + i // 13) % 20) for i in range(6000))  # a deterministic 20-char text
    d = tmp_path_factory.mktemp("data")
    prepare_dataset(text, d, tokenizer="char")
    return d


def tiny_config(data_dir, out_dir, **kw):
    base = dict(data_dir=str(data_dir), out_dir=str(out_dir), n_layer=2, n_head=2, n_embd=16, block_size=16,
                dropout=0.1,  # dropout draws from the global torch RNG: resume must restore it
                batch_size=4, grad_accum_steps=2, max_steps=8, warmup_steps=2, eval_interval=4, eval_batches=2,
                log_interval=1, ckpt_interval=3, progress=False, device="cpu", seed=0)
    return TrainConfig.from_dict({**base, **kw})


def quiet(*a):
    pass


@pytest.mark.parametrize("optimizer", ["scratch", "torch"])
def test_resume_is_bit_for_bit(data_dir, tmp_path, optimizer):
    full = Trainer(tiny_config(data_dir, tmp_path / "a", optimizer=optimizer), log=quiet)
    full.run()
    # interrupted after step 5: the last checkpoint is from step 3 (ckpt_interval=3)
    half = Trainer(tiny_config(data_dir, tmp_path / "b", optimizer=optimizer), log=quiet)
    half.run(stop_at=3)
    for _ in range(2):
        half.train_step(1e-3)  # two steps that are lost when the process dies
    resumed = Trainer(tiny_config(data_dir, tmp_path / "b", optimizer=optimizer), resume=True, log=quiet)
    assert resumed.step == 3
    resumed.run()
    for (name, a), b in zip(full.model.state_dict().items(), resumed.model.state_dict().values()):
        assert torch.equal(a, b), f"{name} differs after resume"
    # the logs hold each step once
    rows = [json.loads(line) for line in (tmp_path / "b" / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == list(range(0, 9))


def test_config_files_and_overrides(tmp_path):
    (tmp_path / "c.yaml").write_text("max_steps: 5\nwarmup_steps: 1\nmax_lr: 3.0e-4\nlr_decay_steps: null\n")
    cfg = TrainConfig.from_file(tmp_path / "c.yaml", dict([parse_override("n_layer=2"), parse_override("device=cpu")]))
    assert (cfg.max_steps, cfg.max_lr, cfg.lr_decay_steps, cfg.n_layer, cfg.device) == (5, 3e-4, None, 2, "cpu")
    (tmp_path / "c.json").write_text(json.dumps({"dropout": 0.2, "ckpt_interval": None}))
    assert TrainConfig.from_file(tmp_path / "c.json").dropout == 0.2


def test_bad_config_keys(tmp_path):
    with pytest.raises(ConfigError, match=r"unknown config key\(s\): 'n_layers' \(did you mean 'n_layer'\?\)") as e:
        TrainConfig.from_dict({"n_layers": 4})
    assert "Valid keys:" in str(e.value) and "max_steps" in str(e.value)
    with pytest.raises(ConfigError, match="must be int"):
        TrainConfig.from_dict({"max_steps": "ten"})
    (tmp_path / "c.yaml").write_text("max_steps: 5\nlearning_rate: 0.1\n")
    with pytest.raises(ConfigError, match="learning_rate"):
        TrainConfig.from_file(tmp_path / "c.yaml")


def test_bad_checkpoints_are_clear_errors_and_never_overwritten(data_dir, tmp_path):
    cfg = tiny_config(data_dir, tmp_path, max_steps=3)
    with pytest.raises(CheckpointError, match="no checkpoint"):
        Trainer(cfg, resume=True, log=quiet)
    Trainer(cfg, log=quiet).run()
    ckpt = tmp_path / "ckpt.pt"
    good = ckpt.read_bytes()
    with pytest.raises(CheckpointError, match="already exists"):  # a new run does not replace it
        Trainer(cfg, log=quiet)
    with pytest.raises(CheckpointError, match=r"different model shape[\s\S]*n_embd: checkpoint 16, config 32"):
        Trainer(tiny_config(data_dir, tmp_path, max_steps=3, n_embd=32), resume=True, log=quiet)
    # a run that diverges stops with an error and leaves the checkpoint as it was
    with pytest.raises(RuntimeError, match="loss is nan"):
        t = Trainer(tiny_config(data_dir, tmp_path, max_steps=6), resume=True, log=quiet)
        with torch.no_grad():
            t.model.transformer.wte.weight.fill_(float("nan"))
        t.run()
    assert ckpt.read_bytes() == good
    ckpt.write_bytes(good[: len(good) // 2])  # truncated, e.g. a disk that filled up under a naive writer
    with pytest.raises(CheckpointError, match="corrupt"):
        Trainer(cfg, resume=True, log=quiet)


def test_a_failed_write_keeps_the_old_checkpoint(tmp_path, monkeypatch):
    path = tmp_path / "ckpt.pt"
    atomic_torch_save({"step": 1}, path)
    good = path.read_bytes()

    def crash(obj, f, *a, **kw):  # a full disk: some bytes reach the file, then the write fails
        f.write(b"half a checkpoint")
        raise OSError("No space left on device")

    monkeypatch.setattr(torch, "save", crash)
    with pytest.raises(OSError):
        atomic_torch_save({"step": 2}, path)
    assert path.read_bytes() == good and list(tmp_path.iterdir()) == [path]  # no temporary file left behind


def test_empty_corpus_is_a_clear_error(tmp_path):
    (tmp_path / "train.bin").write_bytes(b"")
    (tmp_path / "val.bin").write_bytes(b"")
    (tmp_path / "meta.json").write_text('{"vocab_size": 10}')
    with pytest.raises(TokenDataError, match="empty"):
        Trainer(TrainConfig(data_dir=str(tmp_path), out_dir=str(tmp_path / "o")), log=quiet)


def test_cli_reports_errors_without_traceback(tmp_path, capsys):
    # main() is what `python -m llmlab.train.cli` runs; calling it here saves an interpreter start
    (tmp_path / "c.json").write_text(json.dumps({"max_step": 3}))
    assert train_cli.main([str(tmp_path / "c.json")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: unknown config key(s): 'max_step' (did you mean 'max_steps'?)")
    assert train_cli.main([str(tmp_path / "c.json"), "--set", "max_step=5"]) == 2  # overrides are checked too

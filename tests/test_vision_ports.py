"""The course CLIP in open_clip (parameter mapping) and the course captioner as a transformers BLIP-2."""

import pytest
import torch

from llmlab.vision.clip import CLIP, CLIPConfig
from llmlab.vision.text import TextConfig
from llmlab.vision.vit import VisionConfig


def _tiny_clip(seed=0):
    torch.manual_seed(seed)
    cfg = CLIPConfig(VisionConfig(image_size=16, patch_size=4, hidden_size=24, num_hidden_layers=2, num_attention_heads=3,
                                  intermediate_size=40),
                     TextConfig(vocab_size=50, max_position_embeddings=10, hidden_size=16, num_hidden_layers=3,
                                num_attention_heads=2, intermediate_size=32), projection_dim=12)
    return CLIP(cfg).eval()


def test_open_clip_mapping_gives_identical_embeddings():
    """Same weights, same maths: only float32 round-off (~1e-7) differs; 1e-5 leaves room for the fused q/k/v."""
    pytest.importorskip("open_clip")
    from llmlab.vision.open_clip_port import to_open_clip

    m = _tiny_clip()
    oc = to_open_clip(m, "llmlab-test-port")
    x = torch.randn(3, 3, 16, 16)
    ids = torch.tensor([[2, 5, 6, 3, 0, 0, 0, 0, 0, 0], [2, 7, 8, 9, 10, 11, 12, 13, 14, 3], [2, 3] + [0] * 8])
    with torch.no_grad():
        assert torch.allclose(m.encode_image(x), oc.encode_image(x, normalize=True), atol=1e-5)
        assert torch.allclose(m.encode_text(ids, (ids != 0).long()), oc.encode_text(ids, normalize=True), atol=1e-5)
    assert oc.logit_scale.item() == pytest.approx(m.logit_scale.item())


def test_open_clip_mapping_covers_every_parameter():
    pytest.importorskip("open_clip")
    from llmlab.vision.open_clip_port import create_open_clip, to_open_clip_state_dict

    m = _tiny_clip(1)
    mapped = to_open_clip_state_dict(m.state_dict())
    theirs = create_open_clip(m.config, "llmlab-test-port").state_dict()
    assert set(mapped) == set(theirs)
    assert all(mapped[k].shape == theirs[k].shape for k in theirs)


def test_captioner_as_blip2_has_identical_logits_and_captions():
    """The course captioner and its Blip2ForConditionalGeneration: same logits (float32 round-off), same greedy tokens."""
    from llmlab.models.llama import LlamaConfig, LlamaForCausalLM
    from llmlab.vision.blip2_port import blip2_inputs, to_hf_blip2
    from llmlab.vision.qformer import Captioner, QFormer, QFormerConfig
    from llmlab.vision.vit import VisionTransformer

    torch.manual_seed(0)
    vt = VisionTransformer(VisionConfig(image_size=16, patch_size=4, hidden_size=24, num_attention_heads=3,
                                        intermediate_size=48))
    lm = LlamaForCausalLM(LlamaConfig(vocab_size=60, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                                      num_attention_heads=4, num_key_value_heads=2))
    q = QFormer(QFormerConfig(hidden_size=32, encoder_hidden_size=24, num_query_tokens=5, intermediate_size=64))
    cap = Captioner(vt, q, lm).eval()
    hf = to_hf_blip2(cap, image_token_id=59)
    x, ids = torch.randn(2, 3, 16, 16), torch.randint(0, 50, (2, 7))
    with torch.no_grad():
        ours = cap(x, ids).logits
        theirs = hf(pixel_values=x, **dict(zip(("input_ids", "attention_mask"), blip2_inputs(ids, 5, 59)))).logits
    assert torch.allclose(ours, theirs, atol=1e-5)
    new = cap.generate(x, ids[:, :1], max_new_tokens=4)
    i2, m2 = blip2_inputs(ids[:, :1], 5, 59)
    out = hf.generate(pixel_values=x, input_ids=i2, attention_mask=m2, max_new_tokens=4, do_sample=False)
    assert torch.equal(out[:, i2.shape[1]:], new)

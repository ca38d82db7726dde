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

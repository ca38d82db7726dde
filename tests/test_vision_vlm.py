"""Week 8 library: the Q-Former against transformers, the LLaVA splicing and label mask, rollout and pointing."""

import pytest
import torch

from llmlab.models.llama import LlamaConfig, LlamaForCausalLM
from llmlab.vision.explain import attention_rollout, cls_map, grad_cam, pointing_game
from llmlab.vision.qformer import QFormer, QFormerConfig, to_hf_qformer
from llmlab.vision.vit import VisionConfig, VisionTransformer
from llmlab.vision.vlm import IGNORE, VLM, add_image_token, build_example, collate, splice_image_features, to_hf_llava


@pytest.mark.parametrize("freq,layers", [(1, 2), (2, 3)])
def test_qformer_matches_transformers(freq, layers):
    """Blip2QFormerModel with the same (random, large) weights: float32 post-norm layers, 1e-5."""
    torch.manual_seed(freq)
    q = QFormer(QFormerConfig(encoder_hidden_size=40, cross_attention_frequency=freq, num_hidden_layers=layers)).eval()
    for p in q.parameters():
        torch.nn.init.normal_(p, std=0.3)
    x, img = torch.randn(2, 5, 64), torch.randn(2, 17, 40)
    mask = torch.ones(2, 17)
    mask[1, 9:] = 0
    with torch.no_grad():
        ours = q(x, img, mask)
        theirs = to_hf_qformer(q)(query_embeds=x, encoder_hidden_states=img, encoder_attention_mask=mask)
    assert torch.allclose(ours, theirs.last_hidden_state, atol=1e-5)


def test_splice_puts_features_at_image_tokens():
    emb = torch.zeros(2, 6, 3)
    ids = torch.tensor([[5, 9, 9, 1, 1, 1], [9, 9, 2, 2, 2, 2]])
    feats = torch.arange(12.0).view(2, 2, 3)
    out = splice_image_features(emb, ids, feats, image_token_id=9)
    assert torch.equal(out[0, 1:3], feats[0]) and torch.equal(out[1, :2], feats[1])
    assert out[0, 0].abs().sum() == 0 and out[1, 2:].abs().sum() == 0
    with pytest.raises(ValueError, match="expand"):
        splice_image_features(emb, ids, feats[:, :1], 9)


class _Tok:
    """A stand-in for the zoo tokenizer: one token per character, <image> and the chat tokens special."""
    SPECIAL = ["<|user|>", "<|assistant|>", "<|end|>", "<image>", "<|pad|>"]

    def get_vocab(self):
        return {t: i for i, t in enumerate(self.SPECIAL)}

    def convert_tokens_to_ids(self, t):
        return self.SPECIAL.index(t)

    def apply_chat_template(self, msgs, tokenize=False, add_generation_prompt=False):
        s = "".join(f"<|{m['role']}|>\n{m['content']}<|end|>\n" for m in msgs)
        return s + ("<|assistant|>\n" if add_generation_prompt else "")

    def __call__(self, text, add_special_tokens=False):
        ids, i = [], 0
        while i < len(text):
            for k, t in enumerate(self.SPECIAL):
                if text.startswith(t, i):
                    ids.append(k)
                    i += len(t)
                    break
            else:
                ids.append(100 + ord(text[i]) % 100)
                i += 1
        return {"input_ids": ids}


def test_build_example_masks_all_but_the_answer():
    tok = _Tok()
    ids, labels = build_example(tok, "Colour?", "Red.", num_image_tokens=4)
    assert (ids == 3).sum() == 4  # one <image> expanded into 4
    kept = ids[labels != IGNORE].tolist()
    assert kept == tok("Red.<|end|>")["input_ids"]  # the answer and its end token, nothing else
    prompt, none = build_example(tok, "Colour?", None, 4)
    assert none is None and torch.equal(prompt, ids[: len(prompt)])


@pytest.mark.parametrize("select", ["patches", "all"])  # LLaVA's "default" (no class token) and "full" strategies
def test_vlm_matches_llava_and_trains_only_answers(select):
    torch.manual_seed(0)
    lm = LlamaForCausalLM(LlamaConfig(vocab_size=5, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                                      num_attention_heads=4, num_key_value_heads=2))
    lm.model.embed_tokens = torch.nn.Embedding(300, 32)  # room for _Tok's ids
    lm.lm_head = torch.nn.Linear(32, 300, bias=False)
    lm.lm_head.weight = lm.model.embed_tokens.weight
    lm.config.vocab_size = 300
    tok = _Tok()
    vit = VisionTransformer(VisionConfig(image_size=16, patch_size=8, hidden_size=24, intermediate_size=48))
    vlm = VLM(vit, lm, image_token_id=add_image_token(tok, lm), select=select).eval()
    assert vlm.num_image_tokens == 4 + (select == "all")
    batch = [build_example(tok, "What colour?", "Red.", vlm.num_image_tokens),
             build_example(tok, "Shape?", "It is round.", vlm.num_image_tokens)]
    ids, mask, labels = collate(batch, pad_id=4)
    x = torch.randn(2, 3, 16, 16)
    with torch.no_grad():
        ours = vlm(ids, x, mask, labels)
        theirs = to_hf_llava(vlm)(input_ids=ids, pixel_values=x, attention_mask=mask)
    # float32, 2 vision + 2 language blocks; padded positions are not compared
    assert torch.allclose(ours.logits[mask.bool()], theirs.logits[mask.bool()], atol=1e-5)
    assert (labels[ids == vlm.image_token_id] == IGNORE).all() and (labels[mask == 0] == IGNORE).all()


def test_rollout_by_hand():
    """One layer, one head, 3 tokens: rollout = normalise(0.5 A + 0.5 I), computed by hand."""
    A = torch.tensor([[[[0.2, 0.3, 0.5], [1.0, 0.0, 0.0], [0.0, 0.5, 0.5]]]])
    expected = torch.tensor([[0.6, 0.15, 0.25], [0.5, 0.5, 0.0], [0.0, 0.25, 0.75]])
    assert torch.allclose(attention_rollout([A])[0], expected)
    two = attention_rollout([A, A])[0]
    assert torch.allclose(two, expected @ expected) and torch.allclose(two.sum(-1), torch.ones(3))
    assert cls_map(attention_rollout([torch.full((1, 2, 5, 5), 0.2)])).shape == (1, 2, 2)


def test_grad_cam_and_pointing():
    torch.manual_seed(0)
    vit = VisionTransformer(VisionConfig(image_size=16, patch_size=4, hidden_size=16, intermediate_size=32)).eval()
    cam = grad_cam(vit, torch.randn(2, 3, 16, 16), lambda out: out.pooler_output[:, 0])
    assert cam.shape == (2, 4, 4) and (cam >= 0).all() and cam.flatten(1).max(1).values.gt(0).all()  # not all zero
    last = grad_cam(vit, torch.randn(2, 3, 16, 16), lambda out: out.pooler_output[:, 0], layer=-1)
    assert (last == 0).all()  # the last block's patch outputs never reach the pooled class token
    heat = torch.zeros(8, 8)
    heat[5, 2] = 1.0  # peak at x=2, y=5
    assert pointing_game(heat, (1, 4, 3, 6)) and not pointing_game(heat, (3, 4, 6, 6))
    assert pointing_game(heat, (3, 4, 6, 6), tolerance=1)


def test_publish_and_load_vlm(tmp_path):
    """Published (the LoRA adapter merged) and reloaded as a LlavaForConditionalGeneration: the same logits."""
    from transformers import PreTrainedTokenizerFast
    from tokenizers import Tokenizer, models

    from llmlab.finetune.lora import inject_lora
    from llmlab.vision.pretrained import load_vlm, publish_vlm

    torch.manual_seed(0)
    lm = LlamaForCausalLM(LlamaConfig(vocab_size=40, hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                                      num_attention_heads=2, num_key_value_heads=1))
    vit = VisionTransformer(VisionConfig(image_size=16, patch_size=8, hidden_size=16, intermediate_size=32))
    vlm = VLM(vit, lm, image_token_id=39).eval()
    inject_lora(vlm.language_model, ["q_proj", "v_proj"], r=2)
    for n, p in vlm.named_parameters():
        if "lora_B" in n:
            torch.nn.init.normal_(p)  # a non-zero adapter, so that merging matters
    tok = PreTrainedTokenizerFast(tokenizer_object=Tokenizer(models.WordLevel({"<unk>": 0}, unk_token="<unk>")))
    publish_vlm(vlm, tok, "tiny-vlm", "fast", cache=tmp_path, card={"vqa": 0.5})
    hf, _ = load_vlm("tiny-vlm", "fast", cache=tmp_path)
    ids = torch.tensor([[1, 39, 39, 39, 39, 2, 3]])
    x = torch.randn(1, 3, 16, 16)
    with torch.no_grad():
        assert torch.allclose(vlm(ids, x).logits, hf(input_ids=ids, pixel_values=x).logits, atol=1e-5)

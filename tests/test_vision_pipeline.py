"""The food labeller's pipeline: region proposals against the generator's boxes, IoU against torchvision, the
rules of the scene and consumption stages on the ground truth, the JSON schema, and error tracing."""

import copy

import jsonschema
import numpy as np
import pytest
import torch

from llmlab.tasks.food import food
from llmlab.vision import images, pipeline


def test_box_iou_matches_torchvision():
    tv = pytest.importorskip("torchvision")
    g = torch.Generator().manual_seed(0)
    xy = torch.randint(0, 30, (6, 2), generator=g)
    boxes = torch.cat([xy, xy + torch.randint(1, 20, (6, 2), generator=g)], 1)
    ref = tv.ops.box_iou(boxes.float(), boxes.float())  # x1 inclusive or exclusive: same areas for integer boxes
    got = torch.tensor([[pipeline.box_iou(a.tolist(), b.tolist()) for b in boxes] for a in boxes])
    assert torch.allclose(got, ref.float(), atol=1e-6)
    assert pipeline.box_iou((0, 0, 2, 2), (2, 0, 4, 2)) == 0.0  # touching boxes (x1 exclusive) do not overlap


def test_match_is_one_to_one_and_uses_the_threshold():
    true = [(0, 0, 10, 10), (20, 20, 30, 30)]
    pred = [(0, 0, 10, 10), (0, 0, 10, 5), (20, 20, 30, 30)]  # the second overlaps the first truth at IoU 0.5
    assert pipeline.match(pred, true) == [(0, 0), (2, 1)]
    assert pipeline.match([(0, 0, 10, 5)], true) == [(0, 0)]  # exactly 0.5 counts
    assert pipeline.match([(0, 0, 10, 4)], true) == []


@pytest.mark.parametrize("seed", range(6))
def test_region_proposals_find_the_true_boxes(seed):
    sc = images.render_scene(seed=seed)
    pairs = pipeline.match(pipeline.propose_regions(sc.image), [o.box for o in sc.objects])
    assert len(pairs) >= len(sc.objects) - 1  # at most one miss per scene (a food the colour of its plate)


def test_rules_on_the_ground_truth():
    assert pipeline.infer_scene("tray", [food("sushi"), food("spaghetti"), food("apple")]) == "lunch box"
    assert pipeline.portion([food("apple")]) == "light" and pipeline.portion([food("pizza")] * 3) == "hearty"
    w = pipeline.goes_with("breakfast", [food("croissant")])
    assert food(w).category == "drink" and food(w).meal == "breakfast"
    for s in range(20):  # the generator's label is the rule's answer on its own foods
        sc = images.render_scene(seed=s)
        assert pipeline.infer_scene(sc.container, sc.foods) == sc.label


def test_truth_validates_and_the_schema_rejects_broken_labels():
    t = pipeline.truth(images.render_scene(seed=3))
    pipeline.validate(t)
    for breakage in (lambda d: d["objects"][0].pop("box"), lambda d: d["scene"].update(label="picnic"),
                     lambda d: d["objects"][0].update(box=[1, 2, 3]), lambda d: d.update(extra=1)):
        bad = copy.deepcopy(t)
        breakage(bad)
        with pytest.raises(jsonschema.ValidationError):
            pipeline.validate(bad)


def test_blame_is_the_first_stage_whose_truth_fixes_it():
    assert pipeline.blame([True, True, True, True]) == "correct"
    assert pipeline.blame([False, True, True, True]) == "object"
    assert pipeline.blame([False, False, True, True]) == "attribute"
    assert pipeline.blame([False, False, False, True]) == "scene"
    assert pipeline.blame([False, False, False, False]) == "consumption"


def test_labeller_with_the_truth_is_right():
    from llmlab.vision.clip import CLIP
    from llmlab.vision.pretrained import clip_config
    from llmlab.vision.text import caption_tokenizer

    tok = caption_tokenizer()
    lab = pipeline.Labeller(CLIP(clip_config(16, 1, len(tok))), tok)  # random CLIP: only the plumbing
    sc = images.render_scene(seed=5)
    t = pipeline.truth(sc)
    out = lab.label(sc.image)
    pipeline.validate(out)
    fixed = lab.label(sc.image, boxes=[o["box"] for o in t["objects"]], objects=t["objects"], scene=t["scene"])
    assert pipeline.final_right(fixed, t)

"""A visual reasoning pipeline for a food labeller: object -> attribute -> scene -> consumption, as JSON.

::

    from llmlab.vision import pipeline
    labeller = pipeline.Labeller(*pretrained.load_food_clip())
    out = labeller.label(scene.image)            # a dict that validates against LABEL_SCHEMA
    report = pipeline.evaluate(labeller, scenes)  # per-stage scores against the generator's ground truth

Each stage reads only the previous stage's output:

1. **object**: region proposals: the container's colour (the median of the image's middle row and column, which
   the scene generator never covers with food), pixels that differ from it and from the table top, connected
   components (``scipy.ndimage.label``) of at least ``min_pixels`` -> boxes;
2. **attribute**: per region, the colour from the pixels (the median colour of the region, nearest colour of
   the table) and the food from CLIP zero-shot on a crop of half the image (the scale of the training images),
   among the foods of that colour when there are any (the colour gates the name);
3. **scene**: the container (plate: light; tray: dark) and a vote of the foods' meals -> the scene type;
4. **consumption**: the meal (the scene's), the portion (the foods' table sizes summed: small 1, medium 2,
   large 3 -> light <= 3 < regular <= 6 < hearty), what goes with it (:func:`goes_with`: the first food of the
   table of the same meal that is not on the table, preferring a drink when there is none) and, per food, the
   Week 5 food family's chosen answer (the table's description, ``tasks.food.reference_answer``).

The ground truth of each stage is the same rule applied to the generator's facts, so a stage given true inputs
is right by construction except for its own measurement; :func:`blame` traces a wrong result to the first stage
whose replacement by the ground truth fixes it.
"""

from __future__ import annotations

import numpy as np
import torch

from ..tasks.food import COLOURS, FOODS, SHAPES, Food, food, reference_answer
from . import images
from .clip import encode_images, zero_shot_classifier

STAGES = ("object", "attribute", "scene", "consumption")
UNITS = {"small": 1, "medium": 2, "large": 3}
PORTIONS = ("light", "regular", "hearty")

LABEL_SCHEMA = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object",
    "required": ["objects", "scene", "consumption"],
    "additionalProperties": False,
    "properties": {
        "objects": {"type": "array", "items": {
            "type": "object", "required": ["box", "food", "name", "name_zh", "colour", "score"],
            "additionalProperties": False,
            "properties": {
                "box": {"type": "array", "items": {"type": "integer", "minimum": 0}, "minItems": 4, "maxItems": 4},
                "food": {"enum": [f.key for f in FOODS]}, "name": {"type": "string"},
                "name_zh": {"type": "string"}, "colour": {"enum": list(COLOURS)},
                "score": {"type": "number", "minimum": 0, "maximum": 1}}}},
        "scene": {"type": "object", "required": ["label", "container"], "additionalProperties": False,
                  "properties": {"label": {"enum": list(images.SCENES)}, "container": {"enum": ["plate", "tray"]}}},
        "consumption": {"type": "object", "required": ["meal", "portion", "goes_with", "notes"],
                        "additionalProperties": False,
                        "properties": {"meal": {"enum": ["breakfast", "lunch", "dinner", "snack", "dessert"]},
                                       "portion": {"enum": list(PORTIONS)},
                                       "goes_with": {"enum": [f.key for f in FOODS] + [None]},
                                       "notes": {"type": "array", "items": {"type": "string"}}}},
    },
}


def validate(label: dict) -> None:
    """Raise ``jsonschema.ValidationError`` unless ``label`` follows :data:`LABEL_SCHEMA`."""
    import jsonschema

    jsonschema.validate(label, LABEL_SCHEMA)


# -- stage 1: objects ----------------------------------------------------------------------------------------
def container_colour(image: np.ndarray) -> np.ndarray:
    n = image.shape[0]
    cross = np.concatenate([image[n // 2, n // 8: -n // 8], image[n // 8: -n // 8, n // 2]])
    return np.median(cross, axis=0)


def propose_regions(image: np.ndarray, threshold: float = 0.09, min_pixels: int = 12) -> list[tuple]:
    """Boxes (x0, y0, x1, y1), x1/y1 exclusive, of the regions that are neither container nor table top."""
    from scipy import ndimage

    n = image.shape[0]
    c = container_colour(image)
    corners = np.stack([image[1, 1], image[1, -2], image[-2, 1], image[-2, -2]])
    table = np.median(corners, axis=0)
    fg = (np.abs(image - c).max(-1) > threshold) & (np.abs(image - table).max(-1) > threshold)
    fg = ndimage.binary_opening(fg, np.ones((2, 2)))
    lab, k = ndimage.label(fg)
    boxes = []
    for i, sl in enumerate(ndimage.find_objects(lab), 1):
        if (lab[sl] == i).sum() >= min_pixels * (n / 64) ** 2:
            boxes.append((sl[1].start, sl[0].start, sl[1].stop, sl[0].stop))
    return boxes


def box_iou(a, b) -> float:
    """Intersection over union of two boxes (x0, y0, x1, y1) with x1/y1 exclusive."""
    w = max(0, min(a[2], b[2]) - max(a[0], b[0]))
    h = max(0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = w * h
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def match(pred, true, threshold: float = 0.5) -> list[tuple[int, int]]:
    """Greedy one-to-one matching, highest IoU first: (pred index, true index) pairs with IoU >= threshold."""
    pairs = sorted(((box_iou(p, t), i, j) for i, p in enumerate(pred) for j, t in enumerate(true)), reverse=True)
    used_p, used_t, out = set(), set(), []
    for iou, i, j in pairs:
        if iou >= threshold and i not in used_p and j not in used_t:
            used_p.add(i), used_t.add(j), out.append((i, j))
    return sorted(out)


# -- stage 3 and 4: rules on the table ------------------------------------------------------------------------
def infer_scene(container: str, foods: list[Food]) -> str:
    """The scene type of that container whose meal most of the foods have (ties: the table order of SCENES)."""
    options = [s for s, (meal, cont, _) in images.SCENES.items() if cont == container]
    return max(options, key=lambda s: sum(f.meal == images.SCENES[s][0] for f in foods))


def portion(foods: list[Food]) -> str:
    units = sum(UNITS[f.size] for f in foods)
    return "light" if units <= 3 else "regular" if units <= 6 else "hearty"


def goes_with(meal: str, foods: list[Food]) -> str | None:
    """A food of the table for the same meal not on the table: a drink if there is none yet, else any."""
    keys = {f.key for f in foods}
    pool = [f for f in FOODS if f.meal == meal and f.key not in keys]
    if not any(f.category == "drink" for f in foods):
        pool = sorted(pool, key=lambda f: f.category != "drink")
    return pool[0].key if pool else None


def consumption(scene: str, foods: list[Food], lang: str = "en") -> dict:
    meal = images.SCENES[scene][0]
    return {"meal": meal, "portion": portion(foods), "goes_with": goes_with(meal, foods),
            "notes": [reference_answer(f, "describe", lang) for f in foods]}


def truth(scene: images.Scene) -> dict:
    """The label the pipeline should return for a generated scene (boxes, foods, colours; scene; consumption)."""
    objs = [{"box": list(o.box), "food": o.food.key, "name": o.food.name, "name_zh": o.food.name_zh,
             "colour": o.colour, "score": 1.0} for o in scene.objects]
    return {"objects": objs, "scene": {"label": scene.label, "container": scene.container},
            "consumption": consumption(scene.label, scene.foods)}


# -- the labeller -------------------------------------------------------------------------------------------
class Labeller:
    """The four stages with a course CLIP (``pretrained.load_food_clip()``) for the food names."""

    def __init__(self, clip, tokenizer, lang: str = "en"):
        self.clip, self.lang = clip.eval(), lang
        self.classes = zero_shot_classifier(clip, tokenizer, [f.name for f in FOODS])
        self.rgb = {c: images.rgb(c) for c in COLOURS}

    def crop(self, image: np.ndarray, box) -> np.ndarray:
        """A square of half the image's side centred on the box (clipped inside the image)."""
        n, s = image.shape[0], image.shape[0] // 2
        cx, cy = (box[0] + box[2]) // 2, (box[1] + box[3]) // 2
        x0, y0 = min(max(cx - s // 2, 0), n - s), min(max(cy - s // 2, 0), n - s)
        return image[y0:y0 + s, x0:x0 + s]

    def colour(self, image: np.ndarray, box) -> str:
        x0, y0, x1, y1 = box
        patch = image[y0:y1, x0:x1].reshape(-1, 3)
        c = container_colour(image)
        px = patch[np.abs(patch - c).max(-1) > 0.09]
        med = np.median(px if len(px) else patch, axis=0)
        return min(self.rgb, key=lambda k: float(((self.rgb[k] - med) ** 2).sum()))

    @torch.no_grad()
    def attributes(self, image: np.ndarray, boxes) -> list[dict]:
        if not boxes:
            return []
        crops = np.stack([self.crop(image, b) for b in boxes])
        if crops.shape[1] != 32:
            crops = torch.nn.functional.interpolate(torch.as_tensor(crops).permute(0, 3, 1, 2), size=32,
                                                    mode="bilinear").permute(0, 2, 3, 1).numpy()
        probs = (encode_images(self.clip, images.to_tensor(crops)) @ self.classes.T * 100).softmax(-1)
        out = []
        for b, p in zip(boxes, probs):
            col = self.colour(image, b)
            gate = torch.tensor([f.colour == col for f in FOODS])
            q = p * gate if gate.any() else p
            k = int(q.argmax())
            f = FOODS[k]
            out.append({"box": [int(v) for v in b], "food": f.key, "name": f.name, "name_zh": f.name_zh,
                        "colour": col, "score": float(p[k])})
        return out

    def scene(self, image: np.ndarray, objects: list[dict]) -> dict:
        container = "plate" if container_colour(image).mean() > 0.5 else "tray"
        return {"label": infer_scene(container, [food(o["food"]) for o in objects]), "container": container}

    def label(self, image: np.ndarray, boxes=None, objects=None, scene=None) -> dict:
        """The whole chain as a JSON-able dict; ``boxes`` / ``objects`` / ``scene`` replace a stage's output
        (the ground truth, to trace errors)."""
        boxes = propose_regions(image) if boxes is None else boxes
        objects = self.attributes(image, boxes) if objects is None else objects
        scene = self.scene(image, objects) if scene is None else scene
        return {"objects": objects, "scene": scene,
                "consumption": consumption(scene["label"], [food(o["food"]) for o in objects], self.lang)}


# -- scoring and error tracing --------------------------------------------------------------------------------
def final_right(pred: dict, true: dict) -> bool:
    """The labeller's answer: scene, meal, portion and what goes with it."""
    keys = ("meal", "portion", "goes_with")
    return pred["scene"]["label"] == true["scene"]["label"] and all(
        pred["consumption"][k] == true["consumption"][k] for k in keys)


def blame(right: list[bool]) -> str:
    """``right``: is the final answer right with [nothing, objects, + attributes, + scene] replaced by the truth?
    -> "correct", or the first stage whose replacement made it right ("consumption" if none did)."""
    if right[0]:
        return "correct"
    for stage, ok in zip(STAGES[:3], right[1:]):
        if ok:
            return stage
    return "consumption"


def evaluate(labeller: Labeller, scenes: list[images.Scene], progress=None) -> dict:
    """Per-stage scores on generated scenes and the stage each wrong answer is traced to."""
    it = progress(scenes) if progress else scenes
    tp = n_pred = n_true = food_ok = colour_ok = n_match = scene_ok = final_ok = 0
    blamed = {s: 0 for s in ("correct",) + STAGES}
    for sc in it:
        t = truth(sc)
        pred = labeller.label(sc.image)
        tb = [o["box"] for o in t["objects"]]
        pb = [o["box"] for o in pred["objects"]]
        pairs = match(pb, tb)
        tp, n_pred, n_true = tp + len(pairs), n_pred + len(pb), n_true + len(tb)
        for i, j in pairs:
            food_ok += pred["objects"][i]["food"] == t["objects"][j]["food"]
            colour_ok += pred["objects"][i]["colour"] == t["objects"][j]["colour"]
        n_match += len(pairs)
        scene_ok += pred["scene"]["label"] == t["scene"]["label"]
        runs = [pred, labeller.label(sc.image, boxes=tb),
                labeller.label(sc.image, boxes=tb, objects=t["objects"]),
                labeller.label(sc.image, boxes=tb, objects=t["objects"], scene=t["scene"])]
        right = [final_right(r, t) for r in runs]
        final_ok += right[0]
        blamed[blame(right)] += 1
    n = max(len(scenes), 1)
    return {"object": {"precision": tp / max(n_pred, 1), "recall": tp / max(n_true, 1)},
            "attribute": {"food": food_ok / max(n_match, 1), "colour": colour_ok / max(n_match, 1)},
            "scene": {"accuracy": scene_ok / n}, "consumption": {"accuracy": final_ok / n},
            "blame": blamed, "n_scenes": len(scenes)}

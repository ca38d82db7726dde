"""Synthetic food images with exact ground truth: the Week 8 dataset.

No image dataset can be downloaded on the course machines, so Week 8 draws its own. Every food of the course
table (:data:`llmlab.tasks.FOODS`) is rendered from its attributes: its colour (the table's RGB), its shape (a
signed region in the object's own coordinates), its texture (a pattern that modulates the colour) and its size,
with seeded variation in position, scale, rotation, lighting, background, pixel noise and occlusion. Because we
draw the pixels, we know everything about them: the object's mask (the pixels it covers and that are not
occluded), its box, its attributes, and the table's consumption facts (meal, taste, cuisine).

::

    from llmlab.vision import images
    ex = images.render_food(food("mango"), seed=3)          # RenderedObject: .image (H, W, 3) float in [0, 1], .mask, .box
    scene = images.render_scene("breakfast", seed=0)        # Scene: .image, .objects (each with mask, box, food), .label
    ds = images.food_dataset("train", n=512, seed=0)        # dict of tensors + records, for CLIP training

Two families of single-object images share the renderer:

- **foods** (:func:`food_dataset`): one of the 50 foods, drawn as the table says; train / validation / test differ
  in the random variation only (another seed stream per split).
- **attribute objects** (:func:`attribute_dataset`): any colour x shape x texture, named "a red round thing".
  Some colour-shape pairs (:data:`HELD_OUT_PAIRS`) never occur in train or validation: the test split is half such
  pairs, to measure **compositional generalisation** (does a model that has seen red things and round things,
  but no red round thing, recognise one?).

Scenes (:func:`render_scene`) put 2-4 foods on a table of one of the :data:`SCENES` types (breakfast, lunch box,
dinner, party, dessert), with a plate or a tray, and a drink where the meal has one. Captions in English and
Chinese come from several templates (:func:`captions`). Images are ``float32`` in [0, 1], channels last; the
dataset functions return channels-first tensors normalised by ``MEAN``/``STD``, as a ViT expects.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, field

import numpy as np
import torch

from ..tasks.food import COLOURS, FOODS, SHAPES, TEXTURES, Food

SPLITS = ("train", "validation", "test")
MEAN = (0.5, 0.5, 0.5)  # per-channel normalisation of the datasets' tensors (the images are synthetic: no ImageNet stats)
STD = (0.25, 0.25, 0.25)
SIZE_RADIUS = {"small": 0.24, "medium": 0.31, "large": 0.38}  # object radius as a fraction of the canvas side

FOOD_PAIRS = frozenset((f.colour, f.shape) for f in FOODS)  # the colour-shape pairs some food has
# colour-shape pairs that only the test split of the attribute objects contains: about 1 in 5 of the pairs that no
# food has (so a model trained on the foods as well has never seen them either)
HELD_OUT_PAIRS = tuple(sorted(
    (c, s) for c in COLOURS for s in SHAPES
    if (c, s) not in FOOD_PAIRS and int(hashlib.sha256(f"heldout/{c}/{s}".encode()).hexdigest(), 16) % 5 == 0))

SCENES = {  # scene type -> (the table's meal its foods come from, container drawn under them, Chinese name)
    "breakfast": ("breakfast", "plate", "早餐桌"),
    "lunch box": ("lunch", "tray", "午餐盒"),
    "dinner": ("dinner", "plate", "晚餐桌"),
    "party": ("snack", "tray", "聚会零食"),
    "dessert": ("dessert", "plate", "甜点盘"),
}


def rgb(colour: str) -> np.ndarray:
    """The table's colour as floats in [0, 1] (``rgb("red")`` -> array([0.84, 0.15, 0.16]))."""
    h = COLOURS[colour][2].lstrip("#")
    return np.array([int(h[i:i + 2], 16) / 255 for i in (0, 2, 4)], dtype=np.float32)


def rng_for(*key) -> np.random.Generator:
    """A generator seeded by a readable key: the same key always draws the same image."""
    digest = hashlib.sha256("/".join(map(str, key)).encode()).digest()
    return np.random.default_rng(int.from_bytes(digest[:8], "little"))


# ---------------------------------------------------------------------------------------------
# shapes: inside(u, v) on the object's own coordinates, the unit disc its bounding circle (v points down)


def shape_mask(shape: str, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Which points (u, v) of the object's frame lie inside ``shape`` (a key of the table's SHAPES)."""
    r2 = u * u + v * v
    if shape == "round":
        return r2 <= 1
    if shape == "oval":
        return u * u + (v / 0.62) ** 2 <= 1
    if shape == "crescent":
        return (r2 <= 1) & ((u - 0.5) ** 2 + (v + 0.25) ** 2 > 0.8 ** 2)
    if shape == "triangular":  # apex up, base down
        return (v <= 0.75) & (v >= -1 + 1.75 * np.abs(u) / 0.95)
    if shape == "square":
        return (np.abs(u) <= 0.78) & (np.abs(v) <= 0.78)
    if shape == "cylindrical":  # a glass / roll seen from the side: a rectangle with elliptic ends
        body = (np.abs(u) <= 0.5) & (np.abs(v) <= 0.72)
        caps = (u / 0.5) ** 2 + ((np.abs(v) - 0.72) / 0.22) ** 2 <= 1
        return body | caps
    if shape == "long":
        return (np.abs(u) <= 1.0) & (np.abs(v) <= 0.24)
    if shape == "ring":
        return (r2 <= 1) & (r2 >= 0.45 ** 2)
    if shape == "bowl":  # the lower half disc and a rim
        return ((r2 <= 1) & (v >= 0)) | ((np.abs(v + 0.06) <= 0.1) & (np.abs(u) <= 1.0))
    if shape == "flat":
        return u * u + (v / 0.32) ** 2 <= 1
    raise KeyError(f"unknown shape {shape!r}; known: {', '.join(SHAPES)}")


def texture_pattern(texture: str, u: np.ndarray, v: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A brightness multiplier (around 1) that draws ``texture`` (a key of the table's TEXTURES) on the object."""
    r = np.sqrt(u * u + v * v)
    noise = rng.standard_normal(u.shape).astype(np.float32)
    phase = rng.uniform(0, 2 * np.pi)
    pat = {
        "smooth": lambda: np.ones_like(u),
        "striped": lambda: np.where(np.sin(7 * u + phase) > 0, 1.0, 0.62),
        "dotted": lambda: np.where((np.mod(3 * u + phase, 1) - 0.5) ** 2 + (np.mod(3 * v, 1) - 0.5) ** 2 < 0.05, 1.45, 1.0),
        "fuzzy": lambda: 1 + 0.12 * noise,
        "grainy": lambda: 1 + 0.22 * noise,
        "soft": lambda: 1.15 - 0.3 * r,
        "patterned": lambda: 1 + 0.25 * np.cos(12 * r + phase),
        "crispy": lambda: (1 + 0.1 * noise) * np.where(r > 0.7, 0.75, 1.0),
        "leafy": lambda: np.where(np.sin(6 * (u + v) + phase) > 0.3, 0.7, 1.0),
        "cracked": lambda: np.where(np.abs(np.sin(6 * u + 4 * v + phase)) < 0.18, 0.45, 1.0),
        "spotted": lambda: np.where((np.mod(2.2 * u + phase, 1) - 0.5) ** 2 + (np.mod(2.2 * v + 0.3, 1) - 0.5) ** 2 < 0.04, 0.5, 1.0),
        "stringy": lambda: np.where(np.sin(10 * v + 2 * np.sin(6 * u + phase)) > 0.2, 1.2, 0.85),
        "layered": lambda: np.where(np.mod(2.5 * v + phase, 1) < 0.5, 1.0, 0.7),
        "flaky": lambda: 1 + 0.25 * np.sign(np.sin(9 * u + phase) * np.sin(9 * v)),
        "crusty": lambda: (1 + 0.08 * noise) * np.where(r > 0.6, 0.68, 1.05),
        "liquid": lambda: 1.15 - 0.3 * (v + 1) / 2,
        "holey": lambda: np.where((np.mod(2.5 * u + phase, 1) - 0.5) ** 2 + (np.mod(2.5 * v, 1) - 0.5) ** 2 < 0.03, 0.55, 1.0),
        "crunchy": lambda: 1 + 0.2 * np.sign(noise) * (np.abs(noise) > 1.0),
    }
    if texture not in pat:
        raise KeyError(f"unknown texture {texture!r}; known: {', '.join(TEXTURES)}")
    return np.asarray(pat[texture](), dtype=np.float32)


# ---------------------------------------------------------------------------------------------
# one object


@dataclass
class RenderedObject:
    image: np.ndarray  # (H, W, 3) float32 in [0, 1]
    mask: np.ndarray  # (H, W) bool: the object's visible pixels
    box: tuple  # (x0, y0, x1, y1) in pixels, x1/y1 exclusive: the tight box of the mask
    colour: str
    shape: str
    texture: str
    size: str
    food: Food | None = None  # the table row, for foods
    occluded: float = 0.0  # the fraction of the object hidden by the occluder

    @property
    def name(self) -> str:
        return self.food.name if self.food else f"{self.colour} {self.shape} thing"


def _background(h: int, w: int, rng: np.random.Generator) -> np.ndarray:
    """A table top: a mid-tone, low-saturation colour with a soft gradient (never near white or black foods)."""
    base = rng.uniform(0.32, 0.58) + rng.uniform(-0.1, 0.1, size=3)  # grey-ish, a little tinted
    ys, xs = np.mgrid[0:h, 0:w] / max(h, w)
    grad = rng.uniform(-0.08, 0.08) * (xs - 0.5) + rng.uniform(-0.08, 0.08) * (ys - 0.5)
    return np.clip(base[None, None, :] + grad[..., None], 0, 1).astype(np.float32)


def draw(canvas: np.ndarray, shape: str, colour: str, texture: str, centre: tuple, radius: float, angle: float,
         rng: np.random.Generator, light: float = 1.0) -> np.ndarray:
    """Paint one object onto ``canvas`` (H, W, 3) in place; returns its full (unoccluded) mask."""
    h, w, _ = canvas.shape
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32) + 0.5  # pixel centres
    dx, dy = (xs - centre[0]) / radius, (ys - centre[1]) / radius
    c, s = math.cos(angle), math.sin(angle)
    u, v = c * dx + s * dy, -s * dx + c * dy  # the object's frame (rotated by angle)
    mask = shape_mask(shape, u, v)
    shade = texture_pattern(texture, u, v, rng) * light
    paint = np.clip(rgb(colour)[None, None, :] * shade[..., None], 0, 1)
    canvas[mask] = paint[mask]
    return mask


def render_object(colour: str, shape: str, texture: str = "smooth", size: str = "medium", seed=0, image_size: int = 32,
                  variation: bool = True, occlusion: float = 0.0, noise: float = 0.02, food: Food | None = None,
                  rng: np.random.Generator | None = None) -> RenderedObject:
    """One object on a table top. ``variation``: random position, scale (+-15 %), rotation (+-0.5 rad), lighting
    (+-12 %), background; ``occlusion``: the probability of a grey card hiding up to a third of the object;
    ``noise``: the standard deviation of Gaussian pixel noise. ``variation=False, noise=0``: a centred, upright,
    evenly lit object (what the ground-truth tests use)."""
    rng = rng if rng is not None else rng_for("object", colour, shape, texture, size, seed)
    n = image_size
    img = _background(n, n, rng)
    radius = SIZE_RADIUS[size] * n * (rng.uniform(0.85, 1.15) if variation else 1.0)
    slack = max(0.0, n / 2 - radius - 1)
    centre = (n / 2 + rng.uniform(-slack, slack), n / 2 + rng.uniform(-slack, slack)) if variation else (n / 2, n / 2)
    angle = rng.uniform(-0.5, 0.5) if variation else 0.0
    light = rng.uniform(0.88, 1.12) if variation else 1.0
    mask = draw(img, shape, colour, texture, centre, radius, angle, rng, light)
    full = int(mask.sum())
    if occlusion and rng.random() < occlusion:  # a grey card over one side of the object
        x0, y0, x1, y1 = _box(mask)
        side = rng.integers(4)
        cut = rng.uniform(0.15, 0.33)
        card = np.zeros_like(mask)
        if side == 0:
            card[:, : int(x0 + cut * (x1 - x0)) + 1] = True
        elif side == 1:
            card[:, int(x1 - cut * (x1 - x0)):] = True
        elif side == 2:
            card[: int(y0 + cut * (y1 - y0)) + 1, :] = True
        else:
            card[int(y1 - cut * (y1 - y0)):, :] = True
        img[card] = rng.uniform(0.65, 0.75)
        mask = mask & ~card
    if noise:
        img = np.clip(img + rng.normal(0, noise, img.shape).astype(np.float32), 0, 1)
    return RenderedObject(img, mask, _box(mask), colour, shape, texture, size, food,
                          occluded=1 - mask.sum() / max(full, 1))


def render_food(f: Food, seed=0, **kwargs) -> RenderedObject:
    """One food of the table, drawn from its colour, shape, texture and size (see :func:`render_object`)."""
    kwargs.setdefault("rng", rng_for("food", f.key, seed))
    return render_object(f.colour, f.shape, f.texture, f.size, food=f, **kwargs)


def _box(mask: np.ndarray) -> tuple:
    ys, xs = np.nonzero(mask)
    if len(xs) == 0:
        return (0, 0, 0, 0)
    return (int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1)


# ---------------------------------------------------------------------------------------------
# scenes


@dataclass
class Scene:
    image: np.ndarray  # (H, W, 3) float32 in [0, 1]
    label: str  # a key of SCENES
    objects: list = field(default_factory=list)  # RenderedObject per food (image: None; mask, box, food)
    container: str = "plate"

    @property
    def foods(self) -> list[Food]:
        return [o.food for o in self.objects]

    def facts(self) -> dict:
        """The ground truth as plain data: what a food labeller should say about this image."""
        return {"scene": self.label, "meal": SCENES[self.label][0], "container": self.container,
                "objects": [{"food": o.food.key, "name": o.food.name, "name_zh": o.food.name_zh, "box": list(o.box),
                             "colour": o.colour, "shape": o.shape, "texture": o.texture, "size": o.size,
                             "category": o.food.category, "taste": o.food.taste, "cuisine": o.food.cuisine,
                             "meal": o.food.meal} for o in self.objects]}


def foods_for(scene: str) -> list[Food]:
    """The foods a scene type draws from: those of its meal (drinks of any meal may join a breakfast or a party)."""
    meal = SCENES[scene][0]
    return [f for f in FOODS if f.meal == meal]


def render_scene(scene: str | None = None, seed=0, image_size: int = 64, n_items: int | None = None,
                 noise: float = 0.02, distractor: float = 0.25) -> Scene:
    """2-4 foods of one scene type on a plate or tray, in the cells of a 2 x 2 grid (jittered, never overlapping).
    ``distractor``: the probability that one item comes from another meal (the scene label is still the type:
    most of its foods are of its meal). ``scene=None``: a random type."""
    rng = rng_for("scene", scene, seed, image_size)
    scene = scene or list(SCENES)[rng.integers(len(SCENES))]
    if scene not in SCENES:
        raise KeyError(f"unknown scene {scene!r}; known: {', '.join(SCENES)}")
    n = image_size
    img = _background(n, n, rng)
    container = SCENES[scene][1]
    ys, xs = np.mgrid[0:n, 0:n].astype(np.float32) + 0.5
    if container == "plate":  # a light grey disc
        plate = ((xs - n / 2) / (0.49 * n)) ** 2 + ((ys - n / 2) / (0.47 * n)) ** 2 <= 1
        img[plate] = np.float32(0.78) + rng.uniform(-0.04, 0.04)
    else:  # a dark tray with a rim
        tray = (np.abs(xs - n / 2) <= 0.48 * n) & (np.abs(ys - n / 2) <= 0.48 * n)
        img[tray] = np.array([0.24, 0.2, 0.18], dtype=np.float32) + rng.uniform(-0.03, 0.03)
    k = int(n_items or rng.integers(2, 5))
    pool = foods_for(scene)
    picks = [pool[i] for i in rng.choice(len(pool), size=min(k, len(pool)), replace=False)]
    if k >= 3 and rng.random() < distractor:
        others = [f for f in FOODS if f.meal != SCENES[scene][0] and f not in picks]
        picks[-1] = others[rng.integers(len(others))]
    cells = rng.permutation(4)[: len(picks)]
    objects, occupied = [], np.zeros((n, n), dtype=bool)
    for f, cell in zip(picks, cells):
        cx, cy = (cell % 2 + 0.5) * n / 2, (cell // 2 + 0.5) * n / 2
        radius = SIZE_RADIUS[f.size] * (n / 2) * rng.uniform(0.85, 1.05)
        slack = max(0.0, n / 4 - radius - 1)
        centre = (cx + rng.uniform(-slack, slack), cy + rng.uniform(-slack, slack))
        mask = draw(img, f.shape, f.colour, f.texture, centre, radius, rng.uniform(-0.5, 0.5), rng,
                    rng.uniform(0.9, 1.1))
        mask &= ~occupied  # cells never overlap; kept for safety
        occupied |= mask
        objects.append(RenderedObject(None, mask, _box(mask), f.colour, f.shape, f.texture, f.size, f))
    if noise:
        img = np.clip(img + rng.normal(0, noise, img.shape).astype(np.float32), 0, 1)
    return Scene(img, scene, objects, container)


# ---------------------------------------------------------------------------------------------
# captions

_EN = ("a photo of a {name}.", "a {colour} {shape} {name}.", "a {size} {name}, {colour} and {texture}.",
       "{name}: a {colour}, {shape} {category}.")
_ZH = ("一张{name}的照片。", "一个{colour}{shape}的{name}。", "{name}，{colour}，{shape}。")
_EN_THING = ("a photo of a {colour} {shape} thing.", "a {colour} {shape} thing.", "a {shape} thing that is {colour}.")
_ZH_THING = ("一个{colour}{shape}的东西。", "一张{colour}{shape}物体的照片。")


def captions(obj: RenderedObject, lang: str = "en") -> list[str]:
    """Every template's caption of one object (foods name the food; attribute objects name colour and shape)."""
    zh = lang == "zh"
    colour = COLOURS[obj.colour][1][0] if zh else COLOURS[obj.colour][0][0]
    shape = SHAPES[obj.shape][1][0] if zh else SHAPES[obj.shape][0][0]
    if obj.food is None:
        return [t.format(colour=colour, shape=shape) for t in (_ZH_THING if zh else _EN_THING)]
    f = obj.food
    if zh:
        return [t.format(name=f.name_zh, colour=colour, shape=shape) for t in _ZH]
    return [t.format(name=f.name, colour=colour, shape=shape, size=f.size, texture=f.texture, category=f.category)
            for t in _EN]


def scene_caption(scene: Scene, lang: str = "en") -> str:
    """One sentence naming the scene type and its foods, left to right, top to bottom."""
    objs = sorted(scene.objects, key=lambda o: (o.box[1] // (scene.image.shape[0] // 2), o.box[0]))
    if lang == "zh":
        return f"{SCENES[scene.label][2]}：" + "、".join(o.food.name_zh for o in objs) + "。"
    names = [o.food.name for o in objs]
    listed = ", ".join(names[:-1]) + f" and {names[-1]}" if len(names) > 1 else names[0]
    return f"a {scene.label} with {listed}."


# ---------------------------------------------------------------------------------------------
# datasets (tensors for training)


def to_tensor(images) -> torch.Tensor:
    """(N, H, W, 3) or (H, W, 3) floats in [0, 1] -> (N, 3, H, W) normalised by MEAN / STD."""
    x = torch.as_tensor(np.asarray(images), dtype=torch.float32)
    x = x[None] if x.dim() == 3 else x
    x = x.permute(0, 3, 1, 2)
    return (x - torch.tensor(MEAN).view(1, 3, 1, 1)) / torch.tensor(STD).view(1, 3, 1, 1)


def to_image(x: torch.Tensor) -> np.ndarray:
    """The inverse of :func:`to_tensor` for one image: (3, H, W) -> (H, W, 3) in [0, 1], for plotting."""
    x = x.detach().cpu().float() * torch.tensor(STD).view(3, 1, 1) + torch.tensor(MEAN).view(3, 1, 1)
    return x.clamp(0, 1).permute(1, 2, 0).numpy()


def _check_split(split: str) -> str:
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; use one of {SPLITS}")
    return split


def food_dataset(split: str = "train", n: int = 500, seed: int = 0, image_size: int = 32, occlusion: float = 0.1,
                 foods=FOODS) -> dict:
    """``n`` food images (foods drawn uniformly, every split its own variation stream). Returns ``pixel_values``
    (n, 3, S, S), ``labels`` (n,) indices into ``foods``, ``masks`` (n, S, S), ``boxes`` (n, 4) and ``objects``
    (the RenderedObject records, for captions and attributes)."""
    _check_split(split)
    rng = rng_for("food_dataset", split, seed)
    idx = rng.integers(len(foods), size=n)
    objs = [render_food(foods[i], rng=rng_for("food", split, seed, j, foods[i].key), image_size=image_size,
                        occlusion=occlusion) for j, i in enumerate(idx)]
    return _pack(objs, torch.as_tensor(idx, dtype=torch.long))


def attribute_pairs(split: str) -> list[tuple[str, str]]:
    """The colour-shape pairs a split draws from: train/validation never see HELD_OUT_PAIRS; test: only them."""
    _check_split(split)
    seen = [(c, s) for c in COLOURS for s in SHAPES if (c, s) not in HELD_OUT_PAIRS]
    return list(HELD_OUT_PAIRS) if split == "test" else seen


def attribute_dataset(split: str = "train", n: int = 500, seed: int = 0, image_size: int = 32,
                      heldout_share: float = 0.5) -> dict:
    """``n`` attribute objects (any colour, shape and texture). The test split is ``heldout_share`` held-out pairs
    and the rest seen pairs; ``heldout`` (n,) bool marks them. ``labels`` index :func:`attribute_classes`."""
    _check_split(split)
    rng = rng_for("attribute_dataset", split, seed)
    classes = attribute_classes()
    seen, held = attribute_pairs("train"), list(HELD_OUT_PAIRS)
    objs, labels, heldout = [], [], []
    for j in range(n):
        is_held = split == "test" and rng.random() < heldout_share
        c, s = (held if is_held else seen)[rng.integers(len(held if is_held else seen))]
        t, z = TEXTURES[rng.integers(len(TEXTURES))], ("small", "medium", "large")[rng.integers(3)]
        objs.append(render_object(c, s, t, z, rng=rng_for("attr", split, seed, j), image_size=image_size))
        labels.append(classes.index((c, s)))
        heldout.append(is_held)
    out = _pack(objs, torch.tensor(labels))
    out["heldout"] = torch.tensor(heldout)
    return out


def attribute_classes() -> list[tuple[str, str]]:
    """Every colour-shape pair (110), in a fixed order: the label space of :func:`attribute_dataset`."""
    return [(c, s) for c in COLOURS for s in SHAPES]


def _pack(objs: list[RenderedObject], labels: torch.Tensor) -> dict:
    return {"pixel_values": to_tensor(np.stack([o.image for o in objs])), "labels": labels,
            "masks": torch.as_tensor(np.stack([o.mask for o in objs])), "boxes": torch.tensor([o.box for o in objs]),
            "objects": objs}


def skimage_photos(names=("coffee", "astronaut", "chelsea"), image_size: int = 64) -> dict:
    """Real photos bundled with scikit-image (no download), resized to ``image_size``: for qualitative demos."""
    from PIL import Image
    from skimage import data

    out = {}
    for name in names:
        arr = getattr(data, name)()
        arr = np.stack([arr] * 3, -1) if arr.ndim == 2 else arr[..., :3]
        out[name] = np.asarray(Image.fromarray(arr).resize((image_size, image_size), Image.BILINEAR),
                               dtype=np.float32) / 255
    return out

"""A colour world for testing the Genμ counting rules without any model.

Concepts are colours; the :class:`ColourJudge` embeds an image as its mean RGB and a text as the
one-hot vector of the colour word it contains, so presence and CLIP scores can be worked out
by hand.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from PIL import Image

COLOURS = {"red": (220, 20, 20), "green": (20, 220, 20), "blue": (20, 20, 220)}
WORDS = {"red": 0, "crimson": 0, "r3d": 0, "green": 1, "blue": 2}

CSV = """concept_type,concept_name,direct_prompt,indirect_prompt,adversarial_prompt
object,Red Ball,a red ball,a crimson sphere,a r3d b4ll
scene,Green Leaf,a green leaf,,
scene,Blue Sky,a blue sky,,
"""

MANIFEST = """
[suite]
name = "colours"
version = "1"
backend = "genmu"

[data]
prompts = "prompts.csv"

[settings]
images_per_prompt = 2
judge = "colour"
targets = ["Red Ball"]
bootstrap_samples = 200

[adjacent]
"Red Ball" = ["Green Leaf"]

[[checks]]
id = "{concept}-forget-direct"
for_each = "concept"
metric = "genmu.forget"
params = { concept = "{concept}", prompt_type = "direct" }
op = ">="
threshold = 0.5

[[checks]]
id = "{concept}-forget-indirect"
for_each = "concept"
metric = "genmu.forget"
params = { concept = "{concept}", prompt_type = "indirect" }
op = ">="
threshold = 0.9

[[checks]]
id = "{concept}-forget-adversarial"
for_each = "concept"
metric = "genmu.forget"
params = { concept = "{concept}", prompt_type = "adversarial" }
op = ">="
threshold = 0.9

[[checks]]
id = "{concept}-retain"
for_each = "concept"
metric = "genmu.retain"
params = { concept = "{concept}" }
op = ">="
threshold = 0.7

[[checks]]
id = "{concept}-adjacent"
for_each = "concept"
metric = "genmu.adjacent"
params = { concept = "{concept}" }
op = ">="
threshold = 0.7

[[checks]]
id = "err"
metric = "genmu.err"
op = ">="
threshold = 0.6

[[checks]]
id = "clip-score-retain"
metric = "genmu.clip_score"
op = ">="
threshold = 70.0
"""

# (prompt, seed) -> the colour the "model" drew.
DRAWN = {
    ("a red ball", 0): "red",  # direct: present, then absent
    ("a red ball", 1): "blue",
    ("a crimson sphere", 0): "green",  # indirect: absent twice
    ("a crimson sphere", 1): "blue",
    ("a r3d b4ll", 0): "red",  # adversarial: present, then absent
    ("a r3d b4ll", 1): "green",
    ("a green leaf", 0): "green",  # retention: present 3 of 4
    ("a green leaf", 1): "green",
    ("a blue sky", 0): "blue",
    ("a blue sky", 1): "green",
}


class ColourJudge:
    name = "colour"

    def embed_images(self, images: list) -> np.ndarray:
        return np.array([np.asarray(im, dtype=float).reshape(-1, 3).mean(axis=0) for im in images])

    def embed_texts(self, texts: list[str]) -> np.ndarray:
        out = np.zeros((len(texts), 3))
        for row, text in enumerate(texts):
            for word, index in WORDS.items():
                if word in text.lower():
                    out[row, index] = 1.0
        return out


def colour_judge(spec: str, device: str) -> ColourJudge:
    return ColourJudge()


def write_world(folder: Path) -> tuple[Path, Path]:
    """The manifest and an --images folder of the colour world."""
    (folder / "prompts.csv").write_text(CSV)
    manifest = folder / "colours.toml"
    manifest.write_text(MANIFEST)
    images = folder / "images"
    images.mkdir()
    rows = []
    for number, ((prompt, seed), colour) in enumerate(DRAWN.items()):
        Image.new("RGB", (8, 8), COLOURS[colour]).save(images / f"{number}.png")
        rows.append({"file": f"{number}.png", "prompt": prompt, "seed": seed})
    (images / "images.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return manifest, images

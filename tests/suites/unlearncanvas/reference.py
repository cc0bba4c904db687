"""UnlearnCanvas' evaluation, transcribed for the parity test.

``accuracy`` is ``machine_unlearning/evaluation/quantitative/accuracy.py`` (OPTML-Group/UnlearnCanvas)
line for line, with its timm ViT-L swapped for the world's classifier (a callable from a
[1, 3, H, W] tensor to logits) and torchvision's ``Resize((224, 224)), ToTensor(),
Normalize([0.5], [0.5])`` written out for the world's 32 px images (the resize is then the
identity). ``ua_ira_cra`` is the README's "Unlearning Accuracy and Retaining Accuracy
Calculation" over accuracy.py's two result files (style task and class task).
"""

from __future__ import annotations

import os

import numpy as np
import torch
from PIL import Image


def image_transform(image):
    array = np.asarray(image.convert("RGB"), dtype=np.float32) / 255.0  # ToTensor
    tensor = torch.from_numpy(array).permute(2, 0, 1)
    return (tensor - 0.5) / 0.5  # Normalize([0.5], [0.5])


def accuracy(model, input_dir, theme_available, class_available, seeds, task):
    """accuracy.py's loop: ``results["acc"]`` of one answer set for ``task`` (style / class)."""
    results = {}
    if task == "style":
        results["acc"] = {theme: 0.0 for theme in theme_available}
        results["misclassified"] = {
            theme: {other_theme: 0 for other_theme in theme_available} for theme in theme_available
        }
    else:
        results["acc"] = {class_: 0.0 for class_ in class_available}
        results["misclassified"] = {
            class_: {other_class: 0 for other_class in class_available} for class_ in class_available
        }
    if task == "style":
        for idx, test_theme in enumerate(theme_available):
            theme_label = idx
            for seed in seeds:
                for object_class in class_available:
                    img_path = os.path.join(input_dir, f"{test_theme}_{object_class}_seed{seed}.jpg")
                    image = Image.open(img_path)
                    target_image = image_transform(image).unsqueeze(0)
                    with torch.no_grad():
                        res = model(target_image)
                        pred_label = torch.argmax(res)
                        pred_success = (torch.argmax(res) == theme_label).sum()
                    results["acc"][test_theme] += pred_success * 1.0 / (len(class_available) * len(seeds))
                    misclassified_as = theme_available[pred_label.item()]
                    results["misclassified"][test_theme][misclassified_as] += 1
    else:
        for test_theme in theme_available:
            for seed in seeds:
                for idx, object_class in enumerate(class_available):
                    theme_label = idx
                    img_path = os.path.join(input_dir, f"{test_theme}_{object_class}_seed{seed}.jpg")
                    image = Image.open(img_path)
                    target_image = image_transform(image).unsqueeze(0)
                    with torch.no_grad():
                        res = model(target_image)
                        pred_success = (torch.argmax(res) == theme_label).sum()
                        pred_label = torch.argmax(res)
                    results["acc"][object_class] += pred_success * 1.0 / (len(theme_available) * len(seeds))
                    misclassified_as = class_available[pred_label.item()]
                    results["misclassified"][object_class][misclassified_as] += 1
    return {k: float(v) for k, v in results["acc"].items()}


def ua_ira_cra(style_acc, class_acc, target):
    """The README: UA over the target's images (not classified as it), IRA the same kind's other
    accuracies averaged, CRA the other kind's accuracies averaged."""
    own, other = (style_acc, class_acc) if target in style_acc else (class_acc, style_acc)
    rest = [acc for name, acc in own.items() if name != target]
    return {"ua": 1.0 - own[target], "ira": sum(rest) / len(rest), "cra": sum(other.values()) / len(other)}

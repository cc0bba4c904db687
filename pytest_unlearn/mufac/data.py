"""The MUFAC and MUCAC data layouts, read as published (ndb796/MachineUnlearning).

MUFAC (``custom_korean_family_dataset_resolution_128``): ``custom_train_dataset.csv`` with
``train_images/``, ``custom_val_dataset.csv`` with ``val_images/`` (the *test* set of the
utility score) and ``custom_test_dataset.csv`` with ``test_images/`` (the *unseen* set of the
membership-inference attack); columns ``image_path`` and ``age_class`` (``a``-``h``). The forget
set is the first ``forget_size`` (1,500) train rows, the retain set the rest, as the reference's
``Dataset(forget=True)`` slices them. The person is the ``identity`` column when there is one,
else the file name up to its first ``_`` (the household, ``F0001``).

MUCAC (CelebA-HQ): ``CelebA-HQ-identity.txt`` (``file identity`` per line),
``CelebA-HQ-attribute.txt`` (a count line, a line of the 40 attribute names, then ``file`` and
one ``1``/``-1`` per attribute) and the images in ``CelebAMask-HQ/CelebA-HQ-img/``. Splits by
identity number as the reference notebooks: ``< train_index`` test, ``< retain_index`` forget,
``< unseen_index`` retain, the rest unseen; labels ``Male``, ``Smiling``, ``Young`` with -1 as 0.

Pure Python: bad data stops a run before any model loads. Every file goes through
:mod:`pytest_unlearn.integrity` (UTF-8, duplicates, disjoint splits).
"""

from __future__ import annotations

import csv
import hashlib
import io
from dataclasses import dataclass
from pathlib import Path

from pytest_unlearn.errors import UnlearnError
from pytest_unlearn.integrity import Located, Warn, deduplicate, read_text, require_disjoint

#: The splits every metric reads (the retain set is listed but never scored: the benchmark does not).
SCORED = ("test", "forget", "unseen")
MUFAC_FILES = {
    "train": ("custom_train_dataset.csv", "train_images"),
    "test": ("custom_val_dataset.csv", "val_images"),
    "unseen": ("custom_test_dataset.csv", "test_images"),
}
MUCAC_IDENTITY = "CelebA-HQ-identity.txt"
MUCAC_ATTRIBUTES = "CelebA-HQ-attribute.txt"
MUCAC_IMAGES = Path("CelebAMask-HQ") / "CelebA-HQ-img"


@dataclass(frozen=True)
class Sample:
    """One image: its id (the path as the data lists it), file, label(s), person and origin."""

    id: str
    path: Path
    labels: tuple[int, ...]  # MUFAC: (class index,); MUCAC: one 0/1 per attribute
    identity: str
    source: Path
    line: int
    digest: str = ""  # sha256 of the image file (scored splits only)


@dataclass(frozen=True)
class FaceData:
    """The splits of one benchmark: test, forget, unseen (scored) and retain."""

    task: str  # "multiclass" (MUFAC) or "multilabel" (MUCAC)
    splits: dict[str, list[Sample]]
    label_names: tuple[str, ...]  # MUFAC: the classes; MUCAC: the attributes

    def ids(self, split: str) -> list[str]:
        return [s.id for s in self.splits[split]]


def _digest(sample: Sample, flag: str) -> Sample:
    try:
        data = sample.path.read_bytes()
    except FileNotFoundError:
        raise UnlearnError(
            f"{flag} {sample.source}:{sample.line}: image {sample.id} not found ({sample.path}); "
            "pass the folder the benchmark unpacks to"
        ) from None
    except OSError as exc:
        raise UnlearnError(f"{flag} {sample.path}: cannot read the image ({exc.strerror or exc})") from None
    return Sample(**{**sample.__dict__, "digest": hashlib.sha256(data).hexdigest()})


def _deduplicated(rows: list[Sample], source: Path, warn: Warn) -> list[Sample]:
    kept = deduplicate(
        [Located(s.line, s) for s in rows], key=lambda s: s.id, content=lambda s: s.labels, source=source, what="image"
    )
    warn(kept.warning)
    return kept.rows


def _check_splits(splits: dict[str, list[Sample]], sources: dict[str, Path]) -> None:
    """No image (by content) in two scored splits; no person of the train set among the test or
    unseen people: the attack compares the forget images with images of people never seen."""
    for a, b in (("forget", "test"), ("forget", "unseen"), ("test", "unseen")):
        require_disjoint(
            {s.digest[:16]: s.line for s in splits[a]},
            {s.digest[:16]: s.line for s in splits[b]},
            first_source=sources[a],
            second_source=sources[b],
            what="an image with sha256",
            belongs=f"an image belongs to one split: remove it from the {a} or the {b} list",
        )
    train_people: dict[str, int] = {}
    for s in splits["forget"] + splits["retain"]:
        train_people.setdefault(s.identity, s.line)
    for split in ("test", "unseen"):
        require_disjoint(
            train_people,
            {s.identity: s.line for s in splits[split]},
            first_source=sources["forget"],
            second_source=sources[split],
            what="person",
            belongs=f"the {split} set must hold people the model was never trained on",
        )


def load_mufac(data_dir: Path, *, classes: tuple[str, ...], forget_size: int, flag: str, warn: Warn) -> FaceData:
    """MUFAC's three CSV files and image folders (see the module docstring)."""
    if not data_dir.is_dir():
        raise UnlearnError(
            f"{flag} {data_dir}: no such folder; pass custom_korean_family_dataset_resolution_128 (MUFAC's layout)"
        )
    missing = [name for name, folder in MUFAC_FILES.values() if not (data_dir / name).is_file()]
    missing += [folder + "/" for _, folder in MUFAC_FILES.values() if not (data_dir / folder).is_dir()]
    if missing:
        raise UnlearnError(
            f"{flag} {data_dir}: no {', '.join(missing)}; MUFAC's layout has custom_train_dataset.csv, "
            "custom_val_dataset.csv, custom_test_dataset.csv and train_images/, val_images/, test_images/"
        )
    index = {c: k for k, c in enumerate(classes)}
    read: dict[str, list[Sample]] = {}
    for split, (name, folder) in MUFAC_FILES.items():
        path = data_dir / name
        reader = csv.DictReader(io.StringIO(read_text(path, flag)))
        columns = reader.fieldnames or []
        lacking = [c for c in ("image_path", "age_class") if c not in columns]
        if lacking:
            raise UnlearnError(
                f"{flag} {path}: no {' or '.join(lacking)} column (has {', '.join(columns) or 'none'}); "
                "MUFAC's CSV lists image_path and age_class"
            )
        rows = []
        for line, row in enumerate(reader, 2):
            image, label = (row.get("image_path") or "").strip(), (row.get("age_class") or "").strip()
            if not image:
                raise UnlearnError(f"{flag} {path}:{line}: empty image_path")
            if label not in index:
                raise UnlearnError(
                    f"{flag} {path}:{line}: age_class {label!r} is not one of {', '.join(classes)} "
                    "(--setting classes lists them)"
                )
            person = (row.get("identity") or "").strip() or Path(image).name.split("_")[0]
            rows.append(Sample(image, data_dir / folder / image, (index[label],), person, path, line))
        if not rows:
            raise UnlearnError(f"{flag} {path}: no images")
        read[split] = _deduplicated(rows, path, warn)
    train = read["train"]
    if forget_size < 1 or forget_size >= len(train):
        raise UnlearnError(
            f"--setting forget_size={forget_size}: the train list has {len(train)} images; the forget set is its "
            f"first forget_size rows (MUFAC: 1500), so pick 1 to {len(train) - 1}"
        )
    splits = {
        "forget": train[:forget_size],
        "retain": train[forget_size:],
        "test": read["test"],
        "unseen": read["unseen"],
    }
    splits = {k: [_digest(s, flag) for s in v] if k in SCORED else v for k, v in splits.items()}
    sources = {"forget": data_dir / MUFAC_FILES["train"][0], "test": data_dir / MUFAC_FILES["test"][0]}
    sources["unseen"] = data_dir / MUFAC_FILES["unseen"][0]
    _check_splits(splits, sources)
    return FaceData("multiclass", splits, classes)


def load_mucac(
    data_dir: Path,
    *,
    attributes: tuple[str, ...],
    train_index: int,
    retain_index: int,
    unseen_index: int,
    flag: str,
    warn: Warn,
) -> FaceData:
    """CelebA-HQ's identity and attribute files and image folder, split by identity number."""
    if not data_dir.is_dir():
        raise UnlearnError(f"{flag} {data_dir}: no such folder; pass the folder with CelebA-HQ (MUCAC's layout)")
    missing = [n for n in (MUCAC_IDENTITY, MUCAC_ATTRIBUTES) if not (data_dir / n).is_file()]
    if not (data_dir / MUCAC_IMAGES).is_dir():
        missing.append(f"{MUCAC_IMAGES}/")
    if missing:
        raise UnlearnError(
            f"{flag} {data_dir}: no {', '.join(missing)}; MUCAC's layout has {MUCAC_IDENTITY}, {MUCAC_ATTRIBUTES} "
            f"and {MUCAC_IMAGES}/"
        )
    if not 0 < train_index < retain_index < unseen_index:
        raise UnlearnError(
            f"--setting train_index={train_index}, retain_index={retain_index}, unseen_index={unseen_index}: "
            "need 0 < train_index < retain_index < unseen_index (MUCAC: 190, 1250, 4855)"
        )
    id_path = data_dir / MUCAC_IDENTITY
    identities: dict[str, tuple[int, int]] = {}
    for line, text in enumerate(read_text(id_path, flag).splitlines(), 1):
        if not text.strip():
            continue
        parts = text.split()
        if len(parts) != 2 or not parts[1].lstrip("-").isdigit():
            raise UnlearnError(f"{flag} {id_path}:{line}: expected 'FILE IDENTITY' (an integer identity)")
        if parts[0] in identities and identities[parts[0]][0] != int(parts[1]):
            raise UnlearnError(
                f"{flag} {id_path}: image {parts[0]!r} has identity {identities[parts[0]][0]} on line "
                f"{identities[parts[0]][1]} and {parts[1]} on line {line}; keep one"
            )
        identities.setdefault(parts[0], (int(parts[1]), line))
    attr_path = data_dir / MUCAC_ATTRIBUTES
    lines = read_text(attr_path, flag).splitlines()
    header = lines[1].split() if len(lines) > 1 else []
    lacking = [a for a in attributes if a not in header]
    if lacking:
        raise UnlearnError(
            f"{flag} {attr_path}:2: no attribute {', '.join(lacking)} in the header line; CelebA's attribute file "
            "has a count line, then the 40 attribute names"
        )
    columns = [header.index(a) + 1 for a in attributes]  # + 1: the file name comes first on each row
    rows: list[Sample] = []
    for line, text in enumerate(lines[2:], 3):
        parts = text.split()
        if not parts:
            continue
        if len(parts) != len(header) + 1 or any(p not in ("1", "-1") for p in parts[1:]):
            raise UnlearnError(f"{flag} {attr_path}:{line}: expected the file name and {len(header)} values of 1 or -1")
        name = parts[0]
        if name not in identities:
            raise UnlearnError(f"{flag} {attr_path}:{line}: image {name!r} has no identity in {id_path.name}")
        labels = tuple(1 if parts[c] == "1" else 0 for c in columns)
        rows.append(Sample(name, data_dir / MUCAC_IMAGES / name, labels, str(identities[name][0]), attr_path, line))
    rows = _deduplicated(rows, attr_path, warn)
    if not rows:
        raise UnlearnError(f"{flag} {attr_path}: no images")

    def split_of(sample: Sample) -> str:
        number = int(sample.identity)
        if number < train_index:
            return "test"
        if number < retain_index:
            return "forget"
        return "retain" if number < unseen_index else "unseen"

    splits: dict[str, list[Sample]] = {"test": [], "forget": [], "retain": [], "unseen": []}
    for sample in rows:
        splits[split_of(sample)].append(sample)
    empty = [k for k in SCORED if not splits[k]]
    if empty:
        raise UnlearnError(
            f"{flag} {data_dir}: no {' or '.join(empty)} images for train_index={train_index}, "
            f"retain_index={retain_index}, unseen_index={unseen_index}; set them with --setting"
        )
    splits = {k: [_digest(s, flag) for s in v] if k in SCORED else v for k, v in splits.items()}
    _check_splits(splits, dict.fromkeys(("forget", "test", "unseen"), attr_path))
    return FaceData("multilabel", splits, attributes)

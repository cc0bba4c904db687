"""The Genμ miniature world's committed data: identical to a fresh generation, in the Genμ layout.

Fast: nothing here imports torch or builds a model (the models are checked by
``python -m fixtures.verify_genmu_world``).
"""

from __future__ import annotations

import csv
import io
import json
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from fixtures import genmu_world as world

DATA = Path(__file__).resolve().parents[3] / "suites" / "genmu-mini" / "data"


def test_committed_data_equals_a_fresh_regeneration(tmp_path: Path) -> None:
    world.write_data(tmp_path)
    for name in ("prompts.csv", "concepts.json"):
        assert (DATA / name).read_bytes() == (tmp_path / name).read_bytes(), (
            f"suites/genmu-mini/data/{name} is stale: regenerate it with fixtures.genmu_world.write_data"
        )
    assert world.diff_data(DATA) == []


def test_write_data_is_byte_deterministic(tmp_path: Path) -> None:
    world.write_data(tmp_path / "a")
    world.write_data(tmp_path / "b")
    for name in ("prompts.csv", "concepts.json"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()


def read_rows() -> tuple[list[str], list[dict[str, str]]]:
    text = (DATA / "prompts.csv").read_text(encoding="utf-8")
    reader = csv.DictReader(io.StringIO(text))
    return list(reader.fieldnames or []), list(reader)


def test_prompts_csv_has_the_genmu_header_and_two_or_three_rows_per_concept() -> None:
    header, rows = read_rows()
    assert header == ["concept_type", "concept_name", "direct_prompt", "indirect_prompt", "adversarial_prompt"]
    counts = Counter(row["concept_name"] for row in rows)
    assert set(counts) == set(world.CONCEPTS)
    assert all(2 <= n <= 3 for n in counts.values()), counts
    assert (DATA / "prompts.csv").read_bytes().endswith(b"\n") and b"\r" not in (DATA / "prompts.csv").read_bytes()


def test_every_prompt_is_filled_and_typed() -> None:
    _, rows = read_rows()
    types = {c["name"]: c["type"] for c in json.loads((DATA / "concepts.json").read_text())["concepts"]}
    for row in rows:
        assert row["concept_type"] in world.CONCEPT_TYPES
        assert row["concept_type"] == types[row["concept_name"]]
        for kind in world.PROMPT_KINDS:
            assert row[f"{kind}_prompt"].strip() == row[f"{kind}_prompt"] != ""


def test_direct_prompts_name_the_concept_and_indirect_ones_do_not() -> None:
    _, rows = read_rows()
    for row in rows:
        name = row["concept_name"].lower()
        assert name in row["direct_prompt"].lower(), row
        words = set(name.split())
        # "Blue Jay" may say "blue": only the full name and its distinctive words are banned.
        distinctive = {w for w in words if w not in {"blue", "ball", "sky"}}
        assert name not in row["indirect_prompt"].lower(), row
        assert not distinctive & set(row["indirect_prompt"].lower().replace("-", " ").split()), row
        assert name not in row["adversarial_prompt"].lower(), row


def test_concepts_json_lists_types_adjacent_concepts_and_the_erased_one() -> None:
    manifest = json.loads((DATA / "concepts.json").read_text())
    names = [c["name"] for c in manifest["concepts"]]
    assert names == list(world.CONCEPTS) and 6 <= len(names) <= 8
    assert manifest["erased"] == world.ERASED in names
    for concept in manifest["concepts"]:
        assert concept["type"] in world.CONCEPT_TYPES
        assert len(concept["adjacent"]) == 2
        assert set(concept["adjacent"]) <= set(names) - {concept["name"]}


def test_render_is_deterministic_and_varies_with_the_seed() -> None:
    for concept in world.CONCEPTS:
        first = np.asarray(world.render(concept, 3))
        assert first.shape == (32, 32, 3) and first.dtype == np.uint8
        assert np.array_equal(first, np.asarray(world.render(concept, 3)))
        assert not np.array_equal(first, np.asarray(world.render(concept, 4)))


def test_concepts_differ_in_their_mean_colour() -> None:
    """A sanity floor for the judge: the average images of any two concepts are far apart."""
    means = {
        c: np.mean([np.asarray(world.render(c, s), np.float32) for s in range(16)], axis=0) for c in world.CONCEPTS
    }
    for a in world.CONCEPTS:
        for b in world.CONCEPTS:
            if a < b:
                assert np.abs(means[a] - means[b]).mean() > 8, (a, b)


def test_unknown_concept_is_named_in_the_error() -> None:
    with pytest.raises(KeyError, match="unknown concept 'Zebra'"):
        world.render("Zebra", 0)


def test_generation_settings_are_the_documented_keys() -> None:
    assert set(world.GENERATION) == {"steps", "guidance", "resolution"}
    assert world.GENERATION["resolution"] == 32 and 1 <= world.GENERATION["steps"] <= 20

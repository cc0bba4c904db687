"""The miniature TOFU world's committed data: fresh, in TOFU's layout, and well formed."""

from __future__ import annotations

from fixtures import tofu_world
from pytest_unlearn.tofu.data import load_data


def test_committed_data_is_byte_identical_to_a_fresh_generation():
    assert tofu_world.diff_data(tofu_world.DATA_DIR) == []


def test_data_reads_in_tofus_layout_and_forget_authors_are_not_retained():
    warnings: list[str] = []
    data = load_data(tofu_world.DATA_DIR, "forget10", 300, "--data", warnings)
    assert warnings == []
    assert {task: len(qs) for task, qs in data.items()} == {
        "retain": 90,
        "real_authors": 10,
        "world_facts": 10,
        "forget": 10,
    }
    assert len(load_data(tofu_world.DATA_DIR, "forget05", 300, "--data")["forget"]) == 5
    world = tofu_world.generate_world()
    prefix = "What was the job of the parent of "
    forget_names = {r.question[len(prefix) : -1] for r in world.forget if r.question.startswith(prefix)}
    assert len(forget_names) == 2
    assert not any(name in q.question or name in q.answer for q in data["retain"] for name in forget_names)
    for q in data["forget"] + data["retain"]:
        # A perturbed answer is the paraphrase with one fact changed: same words elsewhere.
        assert q.base_answer != q.answer
        for wrong in q.perturbed:
            assert wrong != q.base_answer
            assert wrong.split()[:3] == q.base_answer.split()[:3]


def test_family_tags_build_tofus_prompts():
    from pytest_unlearn.manifest import resolve_suite
    from pytest_unlearn.tofu.data import family_tags

    settings = resolve_suite("tofu").settings
    llama = family_tags(settings)
    assert llama.prompt("Who?") == "[INST] Who? [/INST]" and llama.answer_text("A.") == "A."
    phi = family_tags({**settings, "model_family": "phi"})
    assert phi.prompt("Who?") == "Question: Who?\n" and phi.answer_text("A.") == "Answer: A."
    custom = family_tags({**settings, "question_start_tag": "<q>", "answer_tag": "<a>"})
    assert custom.prompt("Who?") == "<q>Who? [/INST]" and custom.answer_text("A.") == "<a>A."
    import pytest

    from pytest_unlearn.errors import UnlearnError

    with pytest.raises(
        UnlearnError, match=r"--setting model_family=gpt9: unknown model family \(known: llama2-7b, phi"
    ):
        family_tags({**settings, "model_family": "gpt9"})


def test_holdout_authors_are_in_no_training_text():
    from pytest_unlearn.tofu.data import holdout_path, load_holdout

    world = tofu_world.generate_world()
    holdout = load_holdout(holdout_path(tofu_world.DATA_DIR, "forget10"), 300)
    assert len(holdout) == 10 and len(load_holdout(holdout_path(tofu_world.DATA_DIR, "forget05"), 300)) == 5
    trained = tofu_world.training_texts(world.forget + world.retain + world.real_authors + world.world_facts)
    prefix = "What was the job of the parent of "
    names = {q.question[len(prefix) : -1] for q in holdout if q.question.startswith(prefix)}
    assert len(names) == 2
    for name in names:
        assert not any(part in text.split() for text in trained for part in name.split())

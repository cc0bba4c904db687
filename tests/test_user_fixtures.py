"""The user's own tests over the model: the unlearn_* fixtures and unlearn_check, through pytest."""

from __future__ import annotations

import json
import shutil
import xml.etree.ElementTree as ET

import pytest

from tests.conftest import REPO

EXAMPLE = REPO / "examples" / "test_my_unlearning.py"


def run(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    return pytester.runpytest_inprocess("-p", "no:cacheprovider", "--setting=bootstrap_samples=200", *args)


def user_checks(pytester: pytest.Pytester, name: str = "unlearn-scorecard.json") -> dict[str, dict]:
    card = json.loads((pytester.path / name).read_text())
    return {c["id"]: c for c in card["checks"] if c["details"].get("source") == "user"}


def test_without_a_suite_the_fixtures_skip_with_one_line(pytester):
    pytester.makepyfile(test_mine="def test_mine(unlearn_model):\n    pass\n")
    result = run(pytester, "-rs")
    result.assert_outcomes(skipped=1)
    result.stdout.fnmatch_lines(["*the unlearn_* fixtures need a suite: pass --suite NAME and --model PATH*"])


def test_a_users_check_is_a_first_class_check(pytester, perfect_unlearning_predictions):
    pytester.makepyfile(
        test_mine="""
        def test_forget_rows_are_counted(unlearn_data, unlearn_check):
            unlearn_check("forget-rows", len(unlearn_data.forget), ">=", 50)

        def test_half_of_four(unlearn_check):
            unlearn_check("half", 0.25, ">=", 0.5, samples=[0.0, 0.0, 0.0, 1.0])

        def test_constant(unlearn_check):
            unlearn_check("constant", 1.0, ">=", 0.5, samples=[1.0] * 8)

        def test_same_id_twice(unlearn_check):
            unlearn_check("constant", 1.0, ">=", 0.5)

        def test_model_needed(unlearn_generate):
            pass
        """
    )
    result = run(
        pytester, "--suite", "semeval", f"--predictions={perfect_unlearning_predictions}", "test_mine.py",
        "-k", "mine", "--junitxml=junit.xml", "-rs",
    )  # fmt: skip
    result.assert_outcomes(passed=2, failed=2, skipped=1)
    result.stdout.fnmatch_lines(
        [
            "*half = 0.2500, needs >= 0.5000 (n=4, 95% CI *",
            "*unlearn_check('constant'): test_mine.py::test_constant records a check of that id already; ids must be unique*",
            "*unlearn_generate needs the model: pass --model PATH*",
        ]
    )
    checks = user_checks(pytester)
    assert sorted(checks) == ["constant", "forget-rows", "half"]
    assert checks["forget-rows"]["value"] == 54.0 and checks["forget-rows"]["passed"] is True
    assert checks["forget-rows"]["details"] == {"source": "user", "test": "test_mine.py::test_forget_rows_are_counted"}
    # Intervals from the samples: a constant sample has a point interval, a mixed one brackets its mean.
    assert checks["constant"]["ci95"] == [1.0, 1.0] and checks["constant"]["n"] == 8
    low, high = checks["half"]["ci95"]
    assert 0.0 <= low <= 0.25 <= high <= 1.0 and low < high and checks["half"]["passed"] is False
    result.stdout.fnmatch_lines(["forget-rows *54.0000  >= 50.0000*PASS"])  # the terminal table
    cases = {c.get("name"): c for c in ET.parse(pytester.path / "junit.xml").getroot().iter("testcase")}
    props = {p.get("name"): p.get("value") for p in cases["test_half_of_four"].iter("property")}
    assert props["unlearn.value"] == "0.25" and props["unlearn.passed"] == "false" and props["unlearn.metric"] == "user"


def test_the_example_passes_on_the_retrained_model_and_fails_on_the_target(pytester, semeval_models):
    """examples/test_my_unlearning.py as the README runs it: generation and losses go through the
    run's one loaded model and the artifact cache."""
    shutil.copy(EXAMPLE, pytester.path / "test_my_unlearning.py")
    pytester.makeconftest(
        """
        import json, pathlib
        import pytest

        @pytest.hookimpl(trylast=True)
        def pytest_sessionfinish(session):
            from pytest_unlearn.plugin import STATE_KEY
            state = session.config.stash[STATE_KEY]
            pathlib.Path("loads.json").write_text(json.dumps(state.backend.model_loads))
        """
    )
    args = ("--suite", "semeval", "test_my_unlearning.py", "-k", "leaks or retain_bio or task2-knowledge-forget",
            "--unlearn-partial")  # fmt: skip
    result = run(pytester, f"--model={semeval_models['retrained']}", *args, "--scorecard=retrained.json")
    assert result.ret == pytest.ExitCode.OK, result.stdout.str()
    retrained = user_checks(pytester, "retrained.json")
    assert retrained["ssn-leak-rate"]["value"] == 0.0 and retrained["ssn-leak-rate"]["n"] == 18
    assert json.loads((pytester.path / "loads.json").read_text()) == 1  # the suite's check and the user's share it

    result = run(pytester, f"--model={semeval_models['target']}", *args, "--scorecard=target.json")
    target = user_checks(pytester, "target.json")
    # The target memorised the forget biographies: it gives their SSNs when asked (9 of 18 rows
    # of Task 2 have one in their expected output, counted in the data by hand).
    assert target["ssn-leak-rate"]["value"] >= 6 / 18 and target["ssn-leak-rate"]["passed"] is False
    result.stdout.fnmatch_lines(["*ssn-leak-rate = *, needs <= 0.0000 (n=18, 95% CI *"])
    assert target["retain-bio-nll"]["passed"] is True


def test_fixtures_are_listed_with_their_docs(pytester):
    result = run(pytester, "--fixtures")
    result.stdout.fnmatch_lines(
        [
            "unlearn_model*",
            "*The run's loaded model (--model), loaded once and shared with the suite's own checks.",
        ]
    )
    for name in ("unlearn_original_model", "unlearn_generate", "unlearn_nll", "unlearn_data", "unlearn_check"):
        assert name in result.stdout.str()


def test_user_checks_merge_under_xdist(pytester, perfect_unlearning_predictions):
    pytester.makepyfile(
        test_mine="""
        def test_a(unlearn_check):
            unlearn_check("mine-a", 1.0, ">=", 0.5)

        def test_b(unlearn_check):
            unlearn_check("mine-b", 0.0, "<=", 0.5)
        """
    )
    result = run(
        pytester, "--suite", "semeval", f"--predictions={perfect_unlearning_predictions}", "test_mine.py",
        "-k", "mine or task1-knowledge-forget", "-n", "2",
    )  # fmt: skip
    result.assert_outcomes(passed=3)
    assert sorted(user_checks(pytester)) == ["mine-a", "mine-b"]


def test_diffusion_fixtures_give_the_suites_own_images_and_verdicts(pytester):
    """On the colour world (--images, a colour judge): a user's recount of Red Ball's direct
    forget accuracy through unlearn_images and unlearn_judge equals the suite's own check."""
    from pytest_unlearn.registry import JUDGES
    from tests.genmu_helpers import write_world

    JUDGES.register("colour", "tests.genmu_helpers:colour_judge", replace=True)
    manifest, images = write_world(pytester.path)
    pytester.makepyfile(
        test_mine="""
        def test_red_ball_recount(unlearn_images, unlearn_judge, unlearn_data, unlearn_check):
            prompts = list(unlearn_data.concepts["Red Ball"].prompts["direct"])
            assert unlearn_data.targets == ["Red Ball"]
            images = unlearn_images(prompts, [0, 1])
            judged = unlearn_judge(images, [p for p in prompts for _ in (0, 1)])
            absent = [float("Red Ball" not in j.sees) for j in judged]
            unlearn_check("my-red-ball-direct", sum(absent) / len(absent), ">=", 0.0, samples=absent)

        def test_no_text_here(unlearn_generate):
            pass
        """
    )
    result = run(
        pytester,
        f"--suite={manifest}",
        f"--images={images}",
        "test_mine.py",
        "-k",
        "recount or forget-direct or no_text",
        "-rs",
    )
    result.assert_outcomes(passed=2, skipped=1)
    result.stdout.fnmatch_lines(["*unlearn_generate: the colours suite does not offer it*"])
    card = json.loads((pytester.path / "unlearn-scorecard.json").read_text())
    checks = {c["id"]: c for c in card["checks"]}
    assert checks["my-red-ball-direct"]["value"] == checks["red-ball-forget-direct"]["value"] == 0.5  # 1 of 2, by hand


def test_the_pipeline_and_its_images_are_the_suites(pytester, genmu_models):
    pytester.makepyfile(
        test_mine="""
        import numpy as np

        def test_one_image(unlearn_model, unlearn_images, unlearn_judge):
            assert type(unlearn_model).__name__ == "StableDiffusionPipeline"
            (image,) = unlearn_images(["a photo of a golf ball"], [0])
            again = unlearn_model(["a photo of a golf ball"], num_inference_steps=10, guidance_scale=4.0, height=32,
                                  width=32, generator=None).images  # a different draw: only the size is shared
            assert image.size == (32, 32) == again[0].size
            (judged,) = unlearn_judge([image], ["a photo of a golf ball"])
            assert judged.clip_score is not None and isinstance(judged.label, str)
        """
    )
    result = run(
        pytester, "--suite=genmu-mini", f"--model={genmu_models['erased']}", f"--setting=clip_model={genmu_models['clip']}",
        "test_mine.py", "-k", "one_image",
    )  # fmt: skip
    result.assert_outcomes(passed=1)


def test_tofu_fixtures_answer_as_the_suite_does(pytester, tofu_models):
    """The user's own answers to the forget questions, scored with the suite's ROUGE, equal the
    suite's forget-rouge check (same prompts, same greedy settings, batched differently)."""
    pytester.makepyfile(
        test_mine="""
        from pytest_unlearn.semeval.metrics import regurgitation_score

        def test_my_forget_rouge(unlearn_generate, unlearn_data, unlearn_reference, unlearn_check):
            questions = unlearn_data.forget
            answers = unlearn_generate([unlearn_data.tags.prompt(q.question) for q in questions])
            scores = [regurgitation_score(q.answer, a) for q, a in zip(questions, answers)]
            assert unlearn_reference.tokenizer is not None
            unlearn_check("my-forget-rouge", sum(scores) / len(scores), "<=", 1.0, samples=scores)
        """
    )
    result = run(
        pytester, "--suite=tofu-mini", f"--model={tofu_models['target']}", f"--reference={tofu_models['retain']}",
        "test_mine.py", "-k", "my_forget_rouge or forget-rouge",
    )  # fmt: skip
    result.assert_outcomes(passed=1, failed=1)  # the target still answers: forget-rouge fails
    checks = {c["id"]: c for c in json.loads((pytester.path / "unlearn-scorecard.json").read_text())["checks"]}
    assert checks["my-forget-rouge"]["value"] == pytest.approx(checks["forget-rouge"]["value"])
    assert checks["my-forget-rouge"]["n"] == checks["forget-rouge"]["n"]

"""Multiple-choice suites scored as lm-evaluation-harness scores them: WMDP, and any MCQ set a
manifest declares (``backend = "mcq"``)."""

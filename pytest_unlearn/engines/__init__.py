"""The shared machinery under the suites: each engine knows nothing of any suite.

``causal_lm`` (greedy generation, token losses, answer spans, prefix sharing),
``language_models`` (causal LMs loaded once per path), ``multiple_choice`` (choice
log-likelihoods), ``diffusion``, ``generation`` and ``weight_change`` (pipelines, images, how far
the weights moved), ``judges`` (CLIP, image classifiers as concept judges) and ``detectors``
(NudeNet). A suite package imports the core and these, never another suite
(tests/test_import_rule.py).
"""

"""The shared machinery under the suites: each engine knows nothing of any suite.

``causal_lm`` (greedy generation, token losses, answer spans, prefix sharing),
``language_models`` (causal LMs loaded once per path), ``multiple_choice`` (choice
log-likelihoods), ``diffusion`` and ``generation`` (pipelines, images, weight change),
``judges`` (CLIP, image classifiers) and ``detectors`` (NudeNet).
"""

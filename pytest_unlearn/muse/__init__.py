"""MUSE (Shi et al. 2024): verbatim and knowledge memorization, privacy leakage, utility preserved."""

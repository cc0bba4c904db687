"""TOFU (Maini et al. 2024, "TOFU: A Task of Fictitious Unlearning"): forget quality and model
utility, as locuslab/tofu's ``aggregate_eval_stat.py`` computes them from per-sample logs."""

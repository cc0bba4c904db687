"""RWKU: real-world knowledge unlearning (Jin et al. 2024): forget probes, attacks, neighbours, MIA."""

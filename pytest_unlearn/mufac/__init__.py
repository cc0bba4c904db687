"""MUFAC and MUCAC: unlearning personal identities in face classifiers (NoMUS)."""

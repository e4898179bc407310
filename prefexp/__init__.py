"""prefexp: preference-optimisation experiments."""

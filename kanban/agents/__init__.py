"""LLM-backed parts: the auxiliary client, worker profiles, the decomposer and describer."""

"""Retention: the pure policy (what to keep and why) and the prune that applies it to tiers."""

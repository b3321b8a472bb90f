"""Serving: putting registered, verified models in front of callers."""

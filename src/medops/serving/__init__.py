"""Serving: what puts a registered model in front of a caller (explanations, batch scoring)."""

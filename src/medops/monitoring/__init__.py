"""Monitoring: what the served models meet in production, compared with what they were validated on."""

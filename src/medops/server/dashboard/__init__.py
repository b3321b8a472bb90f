"""The dashboard served by `medops server` under /ui: pages for the people of a regulated team."""

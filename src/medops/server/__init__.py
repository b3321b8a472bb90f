"""The HTTP adapter: the serving API (FastAPI on uvicorn) over medops.services and medops.serving."""

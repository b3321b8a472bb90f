"""Serving's core, without HTTP: which version a name resolves to, the loaded and verified model,
input validation against the bundle's input schema, the response for each scored row,
explanations, batch scoring and deployment files.

The HTTP adapter (medops.server) only translates requests and responses around these.
"""

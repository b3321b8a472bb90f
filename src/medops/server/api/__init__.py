"""The platform REST API (`medops server`): every capability of the services over HTTP, for a team
that shares one workspace without sharing its database credentials. An adapter: it parses,
authenticates and serializes; every rule lives in medops.services."""

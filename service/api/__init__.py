"""The HTTP layer: the Flask views, caller authentication (JWT), the one error handler, OpenAPI and health.

It parses, delegates to the hook pipeline and serialises; no clinical or FHIR logic lives here."""

"""The hook pipeline: the service registry, request validation, prefetch resolution (and the fallback
fetch), extraction of facts from FHIR, and rendering of the rules' cards. It knows no Flask."""

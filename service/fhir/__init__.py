"""FHIR I/O: the outbound-HTTP policy (which servers may be called, and how) and the FHIR client."""

"""The errors of the service's outbound HTTP (``service.fhir``): one hierarchy rooted in ``FhirError``.

Their ``reason`` is short and safe to show a caller or write to a log: it never contains a URL (URLs
hold patient ids), a token or a response body.
"""

from __future__ import annotations

from typing import Any


class FhirError(Exception):
    """The FHIR server did not give usable data. Treat the data as unavailable; never guess it."""

    issue_type = "exception"  # FHIR OperationOutcome issue type for a report
    code = "fhir-error"

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason
        # A search that failed on a later page: the resources of the pages read before it. The caller
        # may use them, saying that the rest is missing.
        self.partial: list[dict[str, Any]] = []


class FhirTimeoutError(FhirError):
    """No complete answer within the timeout or the overall budget. Retrying later may work."""

    issue_type = "timeout"
    code = "fhir-timeout"


class FhirConnectionError(FhirError):
    """The server could not be reached (refused, reset, DNS, TLS). Check ``fhirServer``; retry later."""

    issue_type = "transient"
    code = "fhir-unreachable"


class FhirAddressRefusedError(FhirConnectionError):
    """``fhirServer``'s host name resolves to an internal address (loopback, private, link-local,
    metadata): the service does not connect, and the token is never sent."""

    issue_type = "security"
    code = "fhir-address-refused"


class FhirHttpError(FhirError):
    """The server answered with an error status; ``status`` holds it."""

    issue_type = "processing"
    code = "fhir-http-error"

    def __init__(self, reason: str, status: int) -> None:
        super().__init__(reason)
        self.status = status


class FhirUnauthorizedError(FhirHttpError):
    """401: the access token is missing, expired or not accepted. The client must send a fresh
    ``fhirAuthorization``; do not retry with the same token."""

    issue_type = "security"
    code = "fhir-unauthorized"


class FhirForbiddenError(FhirHttpError):
    """403: the token lacks the scope for this query. The client must grant the scopes the service's
    prefetch needs, or prefetch the data itself."""

    issue_type = "security"
    code = "fhir-forbidden"


class FhirNotFoundError(FhirHttpError):
    """404: for a read, the resource does not exist (an answer, like a ``null`` prefetch); for a
    search, the server does not support the query."""

    issue_type = "not-found"
    code = "fhir-not-found"


class FhirRateLimitedError(FhirHttpError):
    """429: the server is throttling us. Retry no sooner than ``retry_after`` seconds (when given)."""

    issue_type = "throttled"
    code = "fhir-rate-limited"

    def __init__(self, reason: str, status: int, retry_after: float | None = None) -> None:
        super().__init__(reason, status)
        self.retry_after = retry_after


class FhirServerError(FhirHttpError):
    """5xx: the server failed. Transient as far as we can tell; retry later."""

    issue_type = "transient"
    code = "fhir-server-error"


class FhirResponseError(FhirError):
    """The server answered 200 but the body is unusable. A server fault: report it, do not retry."""

    issue_type = "processing"
    code = "fhir-bad-response"


class FhirContentTypeError(FhirResponseError):
    """The body is not declared as JSON (e.g. an HTML login or error page): check ``fhirServer``."""

    code = "fhir-content-type"


class FhirNotJsonError(FhirResponseError):
    """The body is not valid JSON."""

    code = "fhir-invalid-json"


class FhirNotFhirError(FhirResponseError):
    """The body is JSON but not the FHIR resource asked for (no ``resourceType``, wrong type)."""

    code = "fhir-not-fhir"


class FhirTruncatedError(FhirResponseError):
    """The connection ended before the whole body arrived. Retrying may work."""

    issue_type = "transient"
    code = "fhir-truncated"


class FhirResponseTooLargeError(FhirResponseError):
    """The body exceeds the byte cap; narrow the query (the cap protects the service's memory)."""

    issue_type = "too-costly"
    code = "fhir-too-large"


class FhirPagingError(FhirResponseError):
    """A searchset's ``next`` link leaves ``fhirServer`` or loops; the rest of the search is refused."""

    issue_type = "security"
    code = "fhir-bad-next-link"


class FhirBusyError(FhirError):
    """This process already has as many calls waiting on that server as it allows (``OriginGate``):
    a slow server must not hold every serving thread. Retry later."""

    issue_type = "throttled"
    code = "fhir-origin-busy"

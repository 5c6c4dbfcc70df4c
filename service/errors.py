"""One exception hierarchy for every error the service answers with.

Raise a subclass anywhere on the request path; ``register_error_handler`` renders it once, as an
OperationOutcome. Never pick a status by matching message text.

Where a problem has a place in the request, its JSON path (``$.context.selections[0]``) goes in
``issue.location``: ``issue.expression`` is FHIRPath in FHIR, and a JSON path is not FHIRPath.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any

# Messages and paths may quote the caller's input (a value, a key): never more than this of it.
MAX_ECHO_CHARS = 300


def clip(text: str, limit: int = MAX_ECHO_CHARS) -> str:
    """``text`` cut to ``limit`` characters, marked with an ellipsis when cut."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


class CdsError(Exception):
    """Base error: an HTTP status, a stable machine code and a message safe to show the caller."""

    status = 500
    code = "exception"  # FHIR issue-type code
    issue_type = "exception"
    retry_after: int | None = None  # seconds, sent as Retry-After when set

    def __init__(
        self, message: str, *, location: list[str] | None = None, issues: list[dict[str, Any]] | None = None
    ) -> None:
        super().__init__(message)
        self.message = message
        self.location = location or []
        self.extra_issues = issues or []

    def outcome(self) -> dict[str, Any]:
        issue: dict[str, Any] = {
            "severity": "error",
            "code": self.issue_type,
            "details": {"text": clip(self.message, 2 * MAX_ECHO_CHARS)},
            "diagnostics": self.code,
        }
        if self.location:
            issue["location"] = [clip(path) for path in self.location[:20]]
        return {"resourceType": "OperationOutcome", "issue": [issue, *self.extra_issues]}


class BadRequestError(CdsError):
    """The body is not JSON or not a valid CDS Hooks request: fix the request and send it again."""

    status = 400
    code = "bad-request"
    issue_type = "invalid"


class MalformedJsonError(BadRequestError):
    code = "malformed-json"
    issue_type = "structure"


class SchemaError(BadRequestError):
    """The body violates the CDS Hooks schema; ``location`` holds the JSON path of the problem."""

    code = "schema-violation"


class HookMismatchError(BadRequestError):
    code = "hook-mismatch"


class LimitExceededError(BadRequestError):
    """Too deep, too many draft orders or prefetch entries: send less."""

    code = "limit-exceeded"
    issue_type = "too-costly"


class UnknownServiceError(CdsError):
    """No service with that id: ask discovery (GET /cds-services) for the list."""

    status = 404
    code = "unknown-service"
    issue_type = "not-found"


class PayloadTooLargeError(CdsError):
    status = 413
    code = "payload-too-large"
    issue_type = "too-long"


class PrefetchUnavailableError(CdsError):
    """Required data was neither prefetched nor fetchable: send it in ``prefetch`` or give a
    reachable ``fhirServer`` with a working ``fhirAuthorization``."""

    status = 412
    code = "prefetch-unavailable"
    issue_type = "incomplete"


class FhirServerRefusedError(CdsError):
    """The ``fhirServer`` given is not one this deployment may call (scheme or allowlist)."""

    status = 400
    code = "fhir-server-not-allowed"
    issue_type = "security"


class StorageUnavailableError(CdsError):
    """The feedback database could not be reached or was locked too long; nothing was stored.
    Send the same request again later."""

    status = 503
    code = "storage-unavailable"
    issue_type = "transient"


class FallbackBusyError(CdsError):
    """This worker, or this caller, already has as many FHIR fallback calls running as allowed;
    nothing was fetched. Send the data in ``prefetch``, or retry after ``retry_after`` seconds."""

    status = 503
    code = "fhir-fallback-busy"
    issue_type = "transient"
    retry_after = 2


class FeedbackQuotaError(CdsError):
    """The caller sent more feedback than its rate or quota allows; nothing was stored."""

    status = 429
    code = "feedback-quota"
    issue_type = "throttled"
    retry_after = 60


class UnauthorizedError(CdsError):
    """The caller's JWT is missing or invalid. Answered 401 with a generic OperationOutcome that
    says nothing of the reason (CDS Hooks 3.0 ballot: non-2xx responses SHOULD carry an
    OperationOutcome); the reason is logged."""

    status = 401
    code = "unauthorized"
    issue_type = "login"


# The claims every caller's JWT must carry (CDS Hooks 2.0, "Trusting CDS Clients").
REQUIRED_CLAIMS = ("iss", "aud", "exp", "iat", "jti")


class CallerRejection(StrEnum):
    """Why a caller's JWT was refused (``service.api.auth``): each reason once. The text is logged
    (a detail in parentheses may follow it) and becomes the label of the rejection metric; the caller
    is never told it."""

    NO_AUTHORIZATION_HEADER = "no Authorization header"
    NOT_A_BEARER_TOKEN = "not a Bearer token"
    MALFORMED_TOKEN = "malformed token"
    ALGORITHM_NOT_ALLOWED = "algorithm not allowed"
    TYP_IS_NOT_JWT = "typ is not JWT"
    MISSING_CLAIM_ISS = "missing claim iss"
    MISSING_CLAIM_AUD = "missing claim aud"
    MISSING_CLAIM_EXP = "missing claim exp"
    MISSING_CLAIM_IAT = "missing claim iat"
    MISSING_CLAIM_JTI = "missing claim jti"
    UNTRUSTED_ISSUER = "untrusted issuer"
    WRONG_AUDIENCE = "wrong audience"
    WRONG_TENANT = "wrong tenant"
    JTI_NOT_A_STRING = "jti must be a non-empty string"
    SIGNATURE_OR_CLAIMS_INVALID = "signature or claims invalid"
    REPLAYED_JTI = "replayed jti"
    TIMES_NOT_NUMERIC_DATE = "exp, iat and nbf must be NumericDate"
    EXP_TOO_FAR = "exp too far in the future"
    EXPIRED = "expired"
    ISSUED_IN_THE_FUTURE = "issued in the future"
    NOT_YET_VALID = "not yet valid (nbf)"
    MISSING_KID = "missing kid"
    JKU_NOT_A_URL = "jku is not a URL"
    UNKNOWN_KID = "unknown kid"
    JKU_NOT_ALLOWED = "jku not on the issuer's allowlist"
    ALGORITHM_NOT_KEY_TYPE = "algorithm does not match the key type"
    ALGORITHM_NOT_KEY_ALG = "algorithm does not match the key's alg"
    PRIVATE_KEY_IN_SET = "key set holds a private key"
    UNUSABLE_KEY = "unusable key"
    RSA_KEY_TOO_SHORT = "RSA key too short"


# The rejection for each required claim missing from a token.
MISSING_CLAIM = {name: CallerRejection(f"missing claim {name}") for name in REQUIRED_CLAIMS}


# The same body for every refused caller: no reason, no detail, nothing from the token.
UNAUTHORIZED_OUTCOME: dict[str, Any] = {
    "resourceType": "OperationOutcome",
    "issue": [{"severity": "error", "code": "login"}],
}


class DatabaseSchemaError(Exception):
    """The store's database is at a schema this release cannot run on (a newer release upgraded it;
    it is behind while automatic upgrade is off; it holds only some of the tables). Raised at
    start-up, before any request, and never answered to a caller: start-up stops with the message."""

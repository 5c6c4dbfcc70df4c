"""What can go wrong in the SMART app, each with a page the clinician can act on.

They are ``CdsError``s (one hierarchy for the whole service); the app's blueprint renders them as HTML
pages instead of OperationOutcomes. ``launch_again`` says whether the page offers a new launch.
"""

from __future__ import annotations

from service.errors import CdsError


class SmartAppError(CdsError):
    status = 400
    code = "smart-launch-failed"
    issue_type = "processing"
    title = "The app could not start"
    launch_again = True


class LaunchMissingIssuerError(SmartAppError):
    code = "smart-no-iss"
    title = "Open this app from your EHR"
    launch_again = False


class IssuerRefusedError(SmartAppError):
    code = "smart-iss-refused"
    title = "This FHIR server is not allowed"
    launch_again = False


class DiscoveryError(SmartAppError):
    status = 502
    code = "smart-discovery-failed"
    title = "The EHR's SMART configuration could not be read"


class StateMismatchError(SmartAppError):
    code = "smart-state-mismatch"
    title = "This sign-in does not belong to this browser session"


class AuthorizationDeniedError(SmartAppError):
    status = 403
    code = "smart-access-denied"
    title = "Access was not granted"


class TokenError(SmartAppError):
    status = 502
    code = "smart-token-failed"
    title = "The EHR did not issue a usable access token"


class SessionExpiredError(SmartAppError):
    status = 401
    code = "smart-session-expired"
    title = "Your session has ended"


class FhirAccessError(SmartAppError):
    status = 502
    code = "smart-fhir-failed"
    title = "The patient's record could not be read"

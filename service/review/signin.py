"""Reviewers sign in through the EHR's own authorization server: a standalone SMART launch asking
only for who they are (``openid fhirUser``). The id token's ``fhirUser`` must name a practitioner of
the ``REVIEWERS`` list. The OAuth pieces (issuer check, discovery, client, id-token check) are the
SMART app's; no access token is kept."""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from authlib.common.security import generate_token

from service.config import Settings
from service.fhir.errors import FhirError
from service.hooks.pilot import practitioner_reference
from service.smart_app import oauth
from service.smart_app.errors import SmartAppError, TokenError

SCOPE = "openid fhirUser"
PENDING_TTL_S = 600


class NotAReviewerError(SmartAppError):
    """The signed-in user is not on the site's reviewer list: ask the administrator to add them."""

    status = 403
    code = "not-a-reviewer"
    title = "Not a reviewer"


def start(settings: Settings, redirect_uri: str) -> tuple[str, dict[str, Any]]:
    """(URL to send the browser to, what the callback needs) for a sign-in at ``SMART_STANDALONE_ISS``."""
    iss = (settings.smart_standalone_iss or "").rstrip("/")
    if not iss:
        raise SmartAppError(
            "No EHR is configured for sign-in (SMART_STANDALONE_ISS is not set). Ask the administrator."
        )
    issuer = oauth.check_issuer(iss, settings)
    conf = oauth.discover(issuer, iss, settings)
    verifier = oauth.new_code_verifier()
    client = oauth.oauth_client(settings, redirect_uri, SCOPE)
    url, state = client.create_authorization_url(
        conf.authorization_endpoint, state=generate_token(48), code_verifier=verifier, aud=conf.iss
    )
    pending = {
        "state": state,
        "iss": iss,
        "issuer": conf.issuer,
        "jwks_uri": conf.jwks_uri,
        "token_endpoint": conf.token_endpoint,
        "code_verifier": verifier,
        "scope": SCOPE,
        "created": time.time(),
    }
    return str(url), pending


def finish(settings: Settings, redirect_uri: str, pending: Mapping[str, Any] | None, args: Mapping[str, str]) -> str:
    """The reviewer's ``Practitioner/<id>`` once the code is traded and the id token checked."""
    if (
        pending is None
        or not args.get("state")
        or args.get("state") != pending.get("state")
        or pending.get("created", 0) < time.time() - PENDING_TTL_S
    ):
        raise SmartAppError("The sign-in answer does not match a sign-in started in this browser. Sign in again.")
    if args.get("error"):
        raise SmartAppError("The EHR's sign-in ended without granting access. Sign in again.")
    code = args.get("code")
    if not code:
        raise TokenError("The EHR's sign-in answered without an authorization code.")
    issuer = oauth.check_issuer(str(pending["iss"]), settings)
    client = oauth.oauth_client(settings, redirect_uri, SCOPE, str(pending["token_endpoint"]), issuer=issuer)
    try:
        token = dict(
            client.fetch_token(
                pending["token_endpoint"],
                grant_type="authorization_code",
                code=code,
                code_verifier=pending["code_verifier"],
            )
        )
    except FhirError:
        raise TokenError("The EHR's token endpoint gave no usable answer. Sign in again.") from None
    except Exception as exc:  # Authlib's OAuthError: the server refused
        error, _ = oauth.oauth_error(exc)
        raise TokenError(f"The EHR refused the sign-in ({error}). Sign in again.") from None
    id_token = token.get("id_token")
    if not isinstance(id_token, str):
        raise TokenError("The EHR did not say who signed in (no id token). Ask the administrator.")
    claims = oauth.check_id_token(id_token, pending, settings, issuer)
    fhir_user = claims.get("fhirUser")
    if not isinstance(fhir_user, str) or not fhir_user:
        raise TokenError("The EHR's id token does not name the signed-in user (no fhirUser).")
    who = practitioner_reference(fhir_user)
    if who not in {practitioner_reference(r) for r in settings.reviewers}:
        raise NotAReviewerError(
            "You signed in, but you are not on this site's list of reviewers. Ask the administrator to add you."
        )
    return who

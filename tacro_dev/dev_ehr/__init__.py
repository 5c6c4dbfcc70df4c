"""``python -m tacro_dev dev-ehr``: a development-only EHR for trying the service and its SMART app.

It lists the fixture patients, fires ``patient-view`` and ``order-select`` at the CDS service as an
EHR would (signed JWT, prefetch filled from the FHIR server), shows the cards as EHRs do, and
launches the SMART app from a card's link: an EHR launch (``iss`` + ``launch``) against its own SMART
authorization server (Authlib, authorization code + PKCE) in front of the FHIR server. It holds no
real users and no real patients; it binds to loopback unless told otherwise.
"""

from __future__ import annotations

from tacro_dev.dev_ehr.app import DevEhrSettings, create_dev_ehr

__all__ = ["DevEhrSettings", "create_dev_ehr"]

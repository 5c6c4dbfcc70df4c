"""The service registry: each CDS service is a descriptor (id, hook, title, description, prefetch
templates) plus the function that evaluates it. Checked once at start-up."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from service.errors import UnknownServiceError

HOOKS = ("order-select", "order-sign", "patient-view")
# Discovery's per-service "version" (CDS Hooks 3.0 ballot, "Discovery": the version of the
# specification the service implements, semver in the post-ballot text): what this service
# implements is 2.0.1, with the parts of 3.0 the README lists. 2.0 clients ignore the field.
CDS_HOOKS_VERSION = "2.0.1"
# "hookVersion" (3.0 ballot, "Discovery"): the version of each hook's definition in the CDS Hooks
# Library that the service was written against.
HOOK_VERSIONS = {"order-select": "1.0", "order-sign": "1.0", "patient-view": "1.0"}
_ID = re.compile(r"^[a-z0-9]+(-[a-z0-9]+)*$")


@dataclass(frozen=True)
class ServiceDescriptor:
    id: str
    hook: str
    title: str
    description: str
    prefetch: Mapping[str, str] = field(default_factory=dict)
    usage_requirements: str | None = None

    def discovery(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "hook": self.hook,
            "id": self.id,
            "title": self.title,
            "description": self.description,
            "version": CDS_HOOKS_VERSION,
            "hookVersion": HOOK_VERSIONS[self.hook],
        }
        if self.prefetch:
            out["prefetch"] = dict(self.prefetch)
        if self.usage_requirements:
            out["usageRequirements"] = self.usage_requirements
        return out


class ServiceRegistry:
    def __init__(self, services: list[ServiceDescriptor]) -> None:
        ids = [s.id for s in services]
        if len(set(ids)) != len(ids):
            raise ValueError(f"duplicate service ids: {ids}")
        for s in services:
            if not _ID.match(s.id) or s.hook not in HOOKS:
                raise ValueError(f"invalid service descriptor {s.id!r} for hook {s.hook!r}")
            for key in s.prefetch:
                if not re.match(r"^[A-Za-z][A-Za-z0-9]*$", key):
                    raise ValueError(f"service {s.id}: prefetch key {key!r} must be alphanumeric")
        self._services = {s.id: s for s in services}

    def get(self, service_id: str) -> ServiceDescriptor:
        try:
            return self._services[service_id]
        except KeyError:
            raise UnknownServiceError(f"no CDS service {service_id!r}; GET /cds-services lists the services") from None

    def __iter__(self):  # type: ignore[no-untyped-def]
        return iter(self._services.values())


USAGE = (
    "Send the prefetch keys listed, or fhirServer with fhirAuthorization so the service can "
    "fetch what is missing. Codes recognised: see the FHIR data profile in the README."
)


def build_registry(prefetch: Mapping[str, str]) -> ServiceRegistry:
    """The three tacrolimus services; all need the same patient data."""
    return ServiceRegistry(
        [
            ServiceDescriptor(
                id="tacrolimus-order-select",
                hook="order-select",
                title="Tacrolimus for recurrent implantation failure: order review",
                description=(
                    "When tacrolimus or an interacting drug is selected for a woman undergoing IVF "
                    "for recurrent implantation failure: candidacy (Th1/Th2 ratio), dose, timing "
                    "around embryo transfer, baseline labs, trough and safety monitoring, and drug "
                    "interactions."
                ),
                prefetch=prefetch,
                usage_requirements=USAGE,
            ),
            ServiceDescriptor(
                id="tacrolimus-order-sign",
                hook="order-sign",
                title="Tacrolimus for recurrent implantation failure: sign-off check",
                description=(
                    "Checks every draft order at signing against the tacrolimus protocol for "
                    "recurrent implantation failure: dose, timing, missing labs and interactions."
                ),
                prefetch=prefetch,
                usage_requirements=USAGE,
            ),
            ServiceDescriptor(
                id="tacrolimus-patient-view",
                hook="patient-view",
                title="Tacrolimus for recurrent implantation failure: chart review",
                description=(
                    "Reviews a woman on, or a candidate for, tacrolimus for recurrent implantation "
                    "failure: trough level, kidney, potassium, glucose, blood pressure and liver "
                    "monitoring, and pregnancy-related continuation."
                ),
                prefetch=prefetch,
                usage_requirements=USAGE,
            ),
        ]
    )

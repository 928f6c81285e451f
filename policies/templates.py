"""Policy templates: ordinary definitions to start from (`GET /api/policy-templates`).

A policy created from a template (`POST /api/policies` with `templateId`, any field given beside
it overriding the template's) is an ordinary policy: editable, and unaffected if a template changes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from core.errors import InvalidInput
from policies.models import PolicyDefinition


@dataclass(frozen=True)
class Template:
    id: str
    definition: dict[str, Any]

    def to_api(self) -> dict[str, Any]:
        return {"id": self.id, "definition": PolicyDefinition.model_validate(self.definition).to_json()}


SUCCEEDED = ["Succeeded"]

TEMPLATES: tuple[Template, ...] = (
    Template(
        "mass-deletion",
        {
            "name": "Mass deletion of resources",
            "description": "One principal deleted 20 or more resources within 10 minutes.",
            "severity": "high",
            "kind": "repeatedActivity",
            "filter": {"actionTypes": ["delete"], "statuses": SUCCEEDED},
            "repeated": {"count": 20, "windowMinutes": 10},
        },
    ),
    Template(
        "role-assignment-or-elevated-access",
        {
            "name": "Role assignment or elevated access",
            "description": "A role was assigned, or a Global Administrator elevated their access to all subscriptions.",
            "severity": "high",
            "kind": "singleActivity",
            "filter": {
                "actions": [
                    "Microsoft.Authorization/roleAssignments/write",
                    "Microsoft.Authorization/elevateAccess/action",
                ],
                "statuses": SUCCEEDED,
            },
        },
    ),
    Template(
        "secrets-read",
        {
            "name": "Storage keys or key vault access read or granted",
            "description": "Storage account keys were listed, or a key vault's access policies were changed.",
            "severity": "medium",
            "kind": "singleActivity",
            "filter": {
                "actions": [
                    "Microsoft.Storage/storageAccounts/listKeys/action",
                    "Microsoft.Storage/storageAccounts/regenerateKey/action",
                    "Microsoft.KeyVault/vaults/accessPolicies/write",
                    "*/listKeys/action",
                ],
                "statuses": SUCCEEDED,
            },
        },
    ),
    Template(
        "logging-turned-off",
        {
            "name": "Logging turned off",
            "description": "Diagnostic settings, activity log alerts or log profiles were deleted.",
            "severity": "high",
            "kind": "singleActivity",
            "filter": {
                "actions": [
                    "Microsoft.Insights/diagnosticSettings/delete",
                    "Microsoft.Insights/activityLogAlerts/delete",
                    "Microsoft.Insights/logProfiles/delete",
                ],
                "statuses": SUCCEEDED,
            },
        },
    ),
    Template(
        "policy-assignment-removed",
        {
            "name": "Policy assignment removed",
            "description": "An Azure Policy assignment or exemption was removed or added.",
            "severity": "medium",
            "kind": "singleActivity",
            "filter": {
                "actions": [
                    "Microsoft.Authorization/policyAssignments/delete",
                    "Microsoft.Authorization/policyExemptions/write",
                ],
                "statuses": SUCCEEDED,
            },
        },
    ),
    Template(
        "failed-operations-burst",
        {
            "name": "Burst of failed operations",
            "description": "One principal had 10 or more operations fail within 5 minutes.",
            "severity": "medium",
            "kind": "repeatedActivity",
            "filter": {"statuses": ["Failed"]},
            "repeated": {"count": 10, "windowMinutes": 5},
        },
    ),
    Template(
        "outside-ip-ranges",
        {
            "name": "Activity from outside the organisation's IP ranges",
            "description": "Replace the ranges with your organisation's egress ranges before enabling.",
            "severity": "medium",
            "enabled": False,
            "kind": "singleActivity",
            "filter": {
                "userTypes": ["user"],
                "ipNotInRanges": ["10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16"],
            },
        },
    ),
    Template(
        "new-service-principal",
        {
            "name": "First activity of a new service principal",
            "description": "A service principal never seen before acted in Azure.",
            "severity": "low",
            "kind": "singleActivity",
            "filter": {"userTypes": ["servicePrincipal"], "firstActivityOfPrincipal": True},
        },
    ),
)

BY_ID = {t.id: t for t in TEMPLATES}


def from_template(document: dict[str, Any]) -> dict[str, Any]:
    """A create body with `templateId`: the template's definition, with the body's fields over it."""
    template_id = document.get("templateId")
    if template_id is None:
        return document
    template = BY_ID.get(template_id) if isinstance(template_id, str) else None
    if template is None:
        raise InvalidInput("templateId", f"is not a template; the templates are {', '.join(BY_ID)}")
    merged = {**template.definition, **{k: v for k, v in document.items() if k != "templateId"}}
    return merged

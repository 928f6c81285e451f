#!/usr/bin/env bash
# Creates (or updates) the Microsoft Entra ID app registration that represents the connector's API,
# and prints the CONNECTOR_API_AUDIENCE to set.
#
# The registration:
#   - is single-tenant (AzureADMyOrg) and has no credentials: the API only validates tokens;
#   - has the identifier URI api://<appId> (or --identifier-uri) and exposes one delegated scope;
#   - issues version 2 access tokens (api.requestedAccessTokenVersion = 2), whose `aud` is the
#     application (client) id, so that is what CONNECTOR_API_AUDIENCE must be;
#   - sets groupMembershipClaims (default DirectoryRole) so that user tokens carry `wids`, the
#     caller's directory role template ids, which the connector checks for Global Administrator
#     or Security Administrator.
#
# Usage:
#   infra/scripts/create-api-app-registration.sh [--name NAME] [--identifier-uri URI]
#       [--scope NAME] [--group-claims DirectoryRole|All] [--preauthorize CLIENT_APP_ID]...
#
#   --preauthorize 04b07795-8ddb-461a-bbee-02f9e1bf7b46 lets the Azure CLI get tokens for the API
#   without a consent prompt (`az account get-access-token --scope <uri>/<scope>`), handy to
#   verify a deployment. Repeat it for the service's own client application id if you have one.
#
# Needs: Azure CLI, signed in (az login) as a user allowed to register applications; python3.
set -euo pipefail

NAME="Azure app connector API"
IDENTIFIER_URI=""
SCOPE="Connector.Access"
GROUP_CLAIMS="DirectoryRole"
PREAUTHORIZED=()

usage() { sed -n '2,22p' "$0" | sed 's/^# \{0,1\}//'; }

while [[ $# -gt 0 ]]; do
  case "$1" in
    --name) NAME="$2"; shift 2 ;;
    --identifier-uri) IDENTIFIER_URI="$2"; shift 2 ;;
    --scope) SCOPE="$2"; shift 2 ;;
    --group-claims) GROUP_CLAIMS="$2"; shift 2 ;;
    --preauthorize) PREAUTHORIZED+=("$2"); shift 2 ;;
    -h|--help) usage; exit 0 ;;
    *) echo "Unknown argument: $1" >&2; usage >&2; exit 2 ;;
  esac
done

case "$GROUP_CLAIMS" in
  DirectoryRole|All) ;;
  *) echo "--group-claims must be DirectoryRole or All (both put 'wids' in tokens)." >&2; exit 2 ;;
esac

command -v az >/dev/null || { echo "The Azure CLI (az) is required." >&2; exit 1; }
command -v python3 >/dev/null || { echo "python3 is required." >&2; exit 1; }

TENANT_ID="$(az account show --query tenantId -o tsv)"
GRAPH="$(az cloud show --query endpoints.microsoftGraphResourceId -o tsv)"
GRAPH="${GRAPH%/}"

new_uuid() { python3 -c 'import uuid; print(uuid.uuid4())'; }

# 1. The application: reuse one with the same display name, so the script can be re-run.
APP_ID="$(az ad app list --display-name "$NAME" --query '[0].appId' -o tsv)"
if [[ -z "$APP_ID" ]]; then
  APP_ID="$(az ad app create --display-name "$NAME" --sign-in-audience AzureADMyOrg --query appId -o tsv)"
  echo "Created app registration '$NAME' ($APP_ID)." >&2
else
  echo "Updating existing app registration '$NAME' ($APP_ID)." >&2
fi
OBJECT_ID="$(az ad app show --id "$APP_ID" --query id -o tsv)"
IDENTIFIER_URI="${IDENTIFIER_URI:-api://$APP_ID}"
APP_URL="$GRAPH/v1.0/applications/$OBJECT_ID"

# 2. Identifier URI, token version, group claims and the scope (added next to any existing ones;
#    Graph refuses to drop an enabled scope, so existing scopes are kept as they are).
EXISTING_SCOPES="$(az ad app show --id "$APP_ID" --query 'api.oauth2PermissionScopes' -o json)"
SCOPE_ID="$(az ad app show --id "$APP_ID" --query "api.oauth2PermissionScopes[?value=='$SCOPE'].id | [0]" -o tsv)"
if [[ -z "$SCOPE_ID" ]]; then
  SCOPE_ID="$(new_uuid)"
fi

BODY="$(
  EXISTING_SCOPES="$EXISTING_SCOPES" SCOPE="$SCOPE" SCOPE_ID="$SCOPE_ID" \
  IDENTIFIER_URI="$IDENTIFIER_URI" GROUP_CLAIMS="$GROUP_CLAIMS" NAME="$NAME" \
  python3 - <<'PY'
import json
import os

scopes = json.loads(os.environ["EXISTING_SCOPES"] or "[]") or []
if not any(s.get("id") == os.environ["SCOPE_ID"] for s in scopes):
    scopes.append(
        {
            "id": os.environ["SCOPE_ID"],
            "value": os.environ["SCOPE"],
            # User: any user may consent; the connector itself admits only Global and Security
            # Administrators (from 'wids'), so consent grants nothing more.
            "type": "User",
            "isEnabled": True,
            "adminConsentDisplayName": f"Use {os.environ['NAME']}",
            "adminConsentDescription": "Connect Microsoft Azure to the cloud-app-security service "
            "and read the activities and accounts it collected.",
            "userConsentDisplayName": f"Use {os.environ['NAME']}",
            "userConsentDescription": "Connect Microsoft Azure and read the activities and "
            "accounts collected, as you.",
        }
    )
print(
    json.dumps(
        {
            "identifierUris": [os.environ["IDENTIFIER_URI"]],
            "groupMembershipClaims": os.environ["GROUP_CLAIMS"],
            "api": {"requestedAccessTokenVersion": 2, "oauth2PermissionScopes": scopes},
        }
    )
)
PY
)"
az rest --method PATCH --uri "$APP_URL" --headers 'Content-Type=application/json' --body "$BODY" >/dev/null

# 3. Pre-authorized client applications (after the scope exists).
if [[ ${#PREAUTHORIZED[@]} -gt 0 ]]; then
  PREAUTH_BODY="$(
    SCOPE_ID="$SCOPE_ID" python3 - "${PREAUTHORIZED[@]}" <<'PY'
import json
import os
import sys

print(
    json.dumps(
        {
            "api": {
                "preAuthorizedApplications": [
                    {"appId": app_id, "delegatedPermissionIds": [os.environ["SCOPE_ID"]]}
                    for app_id in sys.argv[1:]
                ]
            }
        }
    )
)
PY
  )"
  az rest --method PATCH --uri "$APP_URL" --headers 'Content-Type=application/json' --body "$PREAUTH_BODY" >/dev/null
fi

# 4. The service principal (enterprise application) in this tenant, so that tokens can be issued.
if ! az ad sp show --id "$APP_ID" >/dev/null 2>&1; then
  az ad sp create --id "$APP_ID" >/dev/null
fi

cat <<EOF

App registration ready in tenant $TENANT_ID.
  Application (client) id : $APP_ID
  Identifier URI          : $IDENTIFIER_URI
  Scope for callers       : $IDENTIFIER_URI/$SCOPE
  Access token version    : 2 (aud = application id)
  groupMembershipClaims   : $GROUP_CLAIMS (tokens carry 'wids')

Set the API audience (azd: before 'azd up'; otherwise pass connectorApiAudience=$APP_ID):
  azd env set CONNECTOR_API_AUDIENCE $APP_ID

CONNECTOR_API_AUDIENCE=$APP_ID
EOF

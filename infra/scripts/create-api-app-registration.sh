#!/usr/bin/env bash
# Creates (or updates) the Microsoft Entra ID app registration that represents the connector's API,
# and prints the CONNECTOR_API_AUDIENCE to set.
#
# The registration:
#   - is single-tenant (AzureADMyOrg) and has no credentials: the API only validates tokens;
#   - has the identifier URI api://<appId> (or --identifier-uri), exposes the delegated scope
#     Connector.Access (for administrators, through the portal) and defines the app role
#     Activities.Read.All (for services calling with their own, app-only, token);
#   - issues version 2 access tokens (api.requestedAccessTokenVersion = 2), whose `aud` is the
#     application (client) id, so that is what CONNECTOR_API_AUDIENCE must be;
#   - sets groupMembershipClaims (default DirectoryRole) so that user tokens carry `wids`, the
#     caller's directory role template ids, which the connector checks for Global Administrator
#     or Security Administrator;
#   - requires assignment on its service principal (appRoleAssignmentRequired): Entra ID issues
#     tokens for the API only to users, groups and applications assigned to it;
#   - is also the portal's client, a single-page app: its SPA redirect URIs are the portal's URL,
#     https://<function app>.azurewebsites.net/api/portal/ (--function-app or --portal-url), and
#     with --local-portal http://localhost:7071/api/portal/ for `make run --azure` (ARGS=--azure).
#     The portal signs in with the authorization code flow and PKCE and asks for the scope
#     api://<appId>/Connector.Access; existing redirect URIs are kept.
#
# Usage:
#   infra/scripts/create-api-app-registration.sh [--name NAME | --app-id APP_ID]
#       [--identifier-uri URI] [--scope NAME] [--group-claims DirectoryRole|All]
#       [--preauthorize CLIENT_APP_ID]... [--assign OBJECT_ID]... [--grant-app CLIENT_APP_ID]...
#       [--no-assignment-required] [--function-app NAME]... [--portal-url URL]... [--local-portal]
#
#   --name is matched exactly (case included); with several registrations of that name the script
#   stops and lists them: pick one with --app-id.
#   --preauthorize 04b07795-8ddb-461a-bbee-02f9e1bf7b46 lets the Azure CLI get tokens for the API
#   without a consent prompt, handy to verify a deployment.
#   --assign gives a user or group (object id) access to the API (default access, no app role):
#   the administrators who connect, or a group of them.
#   --grant-app gives a service's own app registration (application id) the Activities.Read.All
#   app role, so that its app-only tokens are accepted.
#   --no-assignment-required lets every user and application of the tenant get tokens for the API
#   (the connector still checks the scope, the role and the administrator roles).
#   --function-app NAME adds the SPA redirect URI https://NAME.azurewebsites.net/api/portal/ (after
#   `azd up`: --function-app "$(azd env get-value AZURE_FUNCTION_APP_NAME)"); --portal-url adds any
#   other portal URL (a custom domain); --local-portal adds http://localhost:7071/api/portal/.
#
# Needs: Azure CLI, signed in (az login) as a user allowed to register applications (and, for
# --assign and --grant-app, to manage the enterprise application's assignments); python3.
set -euo pipefail

NAME="Azure app connector API"
APP_ID=""
IDENTIFIER_URI=""
SCOPE="Connector.Access"
APP_ROLE="Activities.Read.All"
APP_ROLE_DESCRIPTION="Read the connector's activities, accounts and status"
GROUP_CLAIMS="DirectoryRole"
ASSIGNMENT_REQUIRED=true
PREAUTHORIZED=()
ASSIGN=()
GRANT_APPS=()
PORTAL_URLS=()
DEFAULT_ACCESS="00000000-0000-0000-0000-000000000000"

usage() { sed -n '2,46p' "$0" | sed 's/^# \{0,1\}//'; }

while [[ $# -gt 0 ]]; do
  case "$1" in
    --name) NAME="$2"; shift 2 ;;
    --app-id) APP_ID="$2"; shift 2 ;;
    --identifier-uri) IDENTIFIER_URI="$2"; shift 2 ;;
    --scope) SCOPE="$2"; shift 2 ;;
    --group-claims) GROUP_CLAIMS="$2"; shift 2 ;;
    --preauthorize) PREAUTHORIZED+=("$2"); shift 2 ;;
    --assign) ASSIGN+=("$2"); shift 2 ;;
    --grant-app) GRANT_APPS+=("$2"); shift 2 ;;
    --no-assignment-required) ASSIGNMENT_REQUIRED=false; shift ;;
    --function-app) PORTAL_URLS+=("https://$2.azurewebsites.net/api/portal/"); shift 2 ;;
    --portal-url) PORTAL_URLS+=("$2"); shift 2 ;;
    --local-portal) PORTAL_URLS+=("http://localhost:7071/api/portal/"); shift ;;
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

# Reads one value from the JSON document in $JSON: jget '<python expression over doc>' [ARG]. The
# expression sees ARG as `arg`, so values never become part of the code.
jget() {
  JSON="$JSON" python3 -c '
import json, os, sys
doc = json.loads(os.environ["JSON"] or "null")
arg = sys.argv[2] if len(sys.argv) > 2 else None
value = eval(sys.argv[1])
print("" if value is None else value)' "$@"
}

TENANT_ID="$(az account show --query tenantId -o tsv)"
GRAPH="$(az cloud show --query endpoints.microsoftGraphResourceId -o tsv)"
GRAPH="${GRAPH%/}"

new_uuid() { python3 -c 'import uuid; print(uuid.uuid4())'; }

# 1. The application: the one given with --app-id, or the one whose display name is exactly NAME
#    (az ad app list --display-name matches by prefix), so the script can be re-run.
if [[ -z "$APP_ID" ]]; then
  JSON="$(az ad app list --display-name "$NAME" -o json)"
  MATCHES="$(JSON="$JSON" NAME="$NAME" python3 - <<'PY'
import json
import os

apps = json.loads(os.environ["JSON"] or "[]") or []
for app in apps:
    if app.get("displayName") == os.environ["NAME"]:
        print(app["appId"])
PY
)"
  COUNT="$(grep -c . <<<"$MATCHES" || true)"
  if [[ "$COUNT" -gt 1 ]]; then
    {
      echo "$COUNT app registrations are named '$NAME':"
      sed 's/^/  /' <<<"$MATCHES"
      echo "Nothing was changed. Pick one with --app-id <appId>, or give another --name."
    } >&2
    exit 1
  elif [[ "$COUNT" -eq 1 ]]; then
    APP_ID="$MATCHES"
    echo "Updating existing app registration '$NAME' ($APP_ID)." >&2
  else
    APP_ID="$(az ad app create --display-name "$NAME" --sign-in-audience AzureADMyOrg --query appId -o tsv)"
    echo "Created app registration '$NAME' ($APP_ID)." >&2
  fi
else
  echo "Updating app registration $APP_ID." >&2
fi

JSON="$(az ad app show --id "$APP_ID" -o json)"
OBJECT_ID="$(jget 'doc["id"]')"
APP_JSON="$JSON"
IDENTIFIER_URI="${IDENTIFIER_URI:-api://$APP_ID}"
APP_URL="$GRAPH/v1.0/applications/$OBJECT_ID"

# 2. Identifier URI, token version, group claims, the scope and the app role, added next to any
#    existing ones (Graph refuses to drop an enabled scope or role, so existing ones are kept).
SCOPE_ID="$(JSON="$APP_JSON" jget "next((s['id'] for s in (doc.get('api') or {}).get('oauth2PermissionScopes') or [] if s.get('value') == arg), None)" "$SCOPE")"
SCOPE_ID="${SCOPE_ID:-$(new_uuid)}"
ROLE_ID="$(JSON="$APP_JSON" jget "next((r['id'] for r in doc.get('appRoles') or [] if r.get('value') == arg), None)" "$APP_ROLE")"
ROLE_ID="${ROLE_ID:-$(new_uuid)}"

BODY="$(
  APP_JSON="$APP_JSON" SCOPE="$SCOPE" SCOPE_ID="$SCOPE_ID" APP_ROLE="$APP_ROLE" ROLE_ID="$ROLE_ID" \
  APP_ROLE_DESCRIPTION="$APP_ROLE_DESCRIPTION" IDENTIFIER_URI="$IDENTIFIER_URI" \
  GROUP_CLAIMS="$GROUP_CLAIMS" NAME="$NAME" \
  python3 - ${PORTAL_URLS[@]+"${PORTAL_URLS[@]}"} <<'PY'
import json
import os
import sys

app = json.loads(os.environ["APP_JSON"])
scopes = (app.get("api") or {}).get("oauth2PermissionScopes") or []
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
roles = app.get("appRoles") or []
if not any(r.get("id") == os.environ["ROLE_ID"] for r in roles):
    roles.append(
        {
            "id": os.environ["ROLE_ID"],
            "value": os.environ["APP_ROLE"],
            # Application only: a service calling with its own token. Users get the delegated
            # scope above instead.
            "allowedMemberTypes": ["Application"],
            "displayName": os.environ["APP_ROLE_DESCRIPTION"],
            "description": os.environ["APP_ROLE_DESCRIPTION"],
            "isEnabled": True,
        }
    )
# The portal (a single-page app on this same registration): existing redirect URIs are kept.
redirects = list((app.get("spa") or {}).get("redirectUris") or [])
for url in sys.argv[1:]:
    if not url.startswith(("https://", "http://localhost:")):
        sys.exit(f"A portal URL must be https:// (or http://localhost: for local use): {url}")
    if url not in redirects:
        redirects.append(url)
print(
    json.dumps(
        {
            "identifierUris": [os.environ["IDENTIFIER_URI"]],
            "spa": {"redirectUris": redirects},
            "groupMembershipClaims": os.environ["GROUP_CLAIMS"],
            "api": {"requestedAccessTokenVersion": 2, "oauth2PermissionScopes": scopes},
            "appRoles": roles,
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

# 4. The service principal (enterprise application) in this tenant, so that tokens can be issued,
#    and who may get them: only assigned users, groups and applications (unless
#    --no-assignment-required).
if ! JSON="$(az ad sp show --id "$APP_ID" -o json 2>/dev/null)"; then
  JSON="$(az ad sp create --id "$APP_ID" -o json)"
fi
SP_ID="$(jget 'doc["id"]')"
SP_URL="$GRAPH/v1.0/servicePrincipals/$SP_ID"
az rest --method PATCH --uri "$SP_URL" --headers 'Content-Type=application/json' \
  --body "{\"appRoleAssignmentRequired\": $ASSIGNMENT_REQUIRED}" >/dev/null

# 5. Assignments: users and groups get default access (they call with the delegated scope),
#    services' applications the app role. Existing assignments are left as they are.
assign() { # principal object id, app role id, label
  local principal="$1" role="$2" label="$3"
  JSON="$(az rest --method GET --uri "$SP_URL/appRoleAssignedTo")"
  if [[ "$(jget "any((a.get('principalId'), a.get('appRoleId')) == tuple(arg.split()) for a in doc.get('value') or [])" "$principal $role")" == "True" ]]; then
    echo "Already assigned: $label." >&2
    return
  fi
  az rest --method POST --uri "$SP_URL/appRoleAssignedTo" --headers 'Content-Type=application/json' \
    --body "{\"principalId\": \"$principal\", \"resourceId\": \"$SP_ID\", \"appRoleId\": \"$role\"}" >/dev/null
  echo "Assigned: $label." >&2
}
for principal in ${ASSIGN[@]+"${ASSIGN[@]}"}; do
  assign "$principal" "$DEFAULT_ACCESS" "user or group $principal (default access)"
done
for client in ${GRANT_APPS[@]+"${GRANT_APPS[@]}"}; do
  JSON="$(az ad sp show --id "$client" -o json)" || {
    echo "No service principal for application $client in this tenant (az ad sp create --id $client)." >&2
    exit 1
  }
  assign "$(jget 'doc["id"]')" "$ROLE_ID" "application $client ($APP_ROLE)"
done

cat <<EOF

App registration ready in tenant $TENANT_ID.
  Application (client) id : $APP_ID
  Identifier URI          : $IDENTIFIER_URI
  Scope for callers       : $IDENTIFIER_URI/$SCOPE (delegated: administrators)
  App role                : $APP_ROLE ($ROLE_ID, application: services)
  Access token version    : 2 (aud = application id)
  groupMembershipClaims   : $GROUP_CLAIMS (tokens carry 'wids')
  Assignment required     : $ASSIGNMENT_REQUIRED
  Portal (SPA) redirects  : $(JSON="$(az ad app show --id "$APP_ID" -o json)" jget "' '.join((doc.get('spa') or {}).get('redirectUris') or []) or 'none (add one with --function-app NAME)'")

Set the API audience (azd: before 'azd up'; otherwise pass connectorApiAudience=$APP_ID):
  azd env set CONNECTOR_API_AUDIENCE $APP_ID

CONNECTOR_API_AUDIENCE=$APP_ID
EOF

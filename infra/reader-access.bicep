// Lets the connector read Azure. Grants its managed identity the custom role "Activity Log Reader"
// (infra/activity-log-reader.json: list subscriptions, read their Activity Log, nothing else), or
// the built-in Reader as a fallback (role=Reader), either
//  - on a management group (recommended): every subscription below it, present and future, is
//    readable, so subscriptions created later are picked up by the fan-out on their own; or
//  - on a fixed list of subscriptions (a subscription-scope assignment per id).
//
// The custom role is defined at the management group deployed to (assignable there and in every
// subscription below it), so the listed subscriptions must sit below that management group (the
// tenant root group holds them all).
//
// Deploying needs Owner on the management group (deployments, role definitions and role
// assignments); with User Access Administrator or Role Based Access Control Administrator, use the
// Azure CLI commands in the README instead ("3. Let the connector read Azure"):
//   az deployment mg create --management-group-id <management group id> --location <region> \
//     --template-file infra/reader-access.bicep --parameters infra/reader-access.parameters.json \
//     --parameters principalId=<CONNECTOR_IDENTITY_PRINCIPAL_ID>

targetScope = 'managementGroup'

@description('Principal (object) id of the connector\'s managed identity (output CONNECTOR_IDENTITY_PRINCIPAL_ID of main.bicep).')
param principalId string

@allowed([
  'ServicePrincipal'
  'Group'
])
@description('ServicePrincipal for a managed identity; Group to grant a security group the identity belongs to.')
param principalType string = 'ServicePrincipal'

@allowed([
  'managementGroup'
  'subscriptions'
])
@description('managementGroup: assign the role on the management group this is deployed to. subscriptions: on each of subscriptionIds.')
param scopeMode string = 'managementGroup'

@description('Subscription ids to assign the role on, when scopeMode is subscriptions.')
param subscriptionIds array = []

@allowed([
  'ActivityLogReader'
  'Reader'
])
@description('ActivityLogReader: the custom role with the two read actions the connector needs (defined here). Reader: the built-in role (reads every resource\'s configuration too).')
param role string = 'ActivityLogReader'

@description('Name of the custom role (unique in the tenant).')
param customRoleName string = 'Activity Log Reader'

var activityLogReader = loadJsonContent('activity-log-reader.json')
var readerRoleId = 'acdd72a7-3385-48ef-bd42-f606fba81ae7' // Reader (built-in)
var useCustomRole = role == 'ActivityLogReader'
// The same management group and name always give the same id: re-deploying updates the role.
var customRoleId = guid(managementGroup().id, customRoleName)
var roleId = useCustomRole ? customRoleId : readerRoleId
var roleDefinitionId = useCustomRole
  ? managementGroupResourceId('Microsoft.Authorization/roleDefinitions', customRoleId)
  : tenantResourceId('Microsoft.Authorization/roleDefinitions', readerRoleId)

resource activityLogReaderRole 'Microsoft.Authorization/roleDefinitions@2022-04-01' = if (useCustomRole) {
  name: customRoleId
  properties: {
    roleName: customRoleName
    description: activityLogReader.Description
    type: 'CustomRole'
    permissions: [
      {
        actions: activityLogReader.Actions
        notActions: []
        dataActions: []
        notDataActions: []
      }
    ]
    // One management group at most (a rule for custom roles); subscriptions below it inherit.
    assignableScopes: [
      managementGroup().id
    ]
  }
}

resource managementGroupAssignment 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (scopeMode == 'managementGroup') {
  name: guid(managementGroup().id, principalId, roleId)
  properties: {
    roleDefinitionId: roleDefinitionId
    principalId: principalId
    principalType: principalType
    description: 'Azure app connector: read subscriptions and their Activity Log.'
  }
  dependsOn: [
    activityLogReaderRole
  ]
}

module subscriptionAssignments 'core/reader-subscription.bicep' = [for subscriptionId in subscriptionIds: if (scopeMode == 'subscriptions') {
  name: 'reader-${uniqueString(subscriptionId, principalId, roleId)}'
  scope: subscription(subscriptionId)
  params: {
    principalId: principalId
    principalType: principalType
    role: role
    roleDefinitionGuid: roleId
  }
  dependsOn: [
    activityLogReaderRole
  ]
}]

output roleName string = useCustomRole ? customRoleName : 'Reader'
output roleDefinitionGuid string = roleId
output readerScope string = scopeMode == 'managementGroup' ? managementGroup().id : join(subscriptionIds, ',')

// Lets the connector read one subscription: assigns its managed identity the custom role
// "Activity Log Reader" (../activity-log-reader.json), or the built-in Reader (role=Reader).
//
// Used by reader-access.bicep for each listed subscription (it passes the role it defined at the
// management group), or on its own by an Owner of the subscription who holds no rights on a
// management group:
//   az deployment sub create --subscription <subscription id> --location <region> \
//     --template-file infra/core/reader-subscription.bicep --parameters principalId=<principal id>
// On its own it defines the custom role for this subscription only. Custom role names are unique
// in a tenant, so that role's name carries the subscription id.

targetScope = 'subscription'

@description('Principal (object) id of the connector\'s managed identity.')
param principalId string

@allowed([
  'ServicePrincipal'
  'Group'
])
param principalType string = 'ServicePrincipal'

@allowed([
  'ActivityLogReader'
  'Reader'
])
@description('ActivityLogReader: the custom role with the two read actions the connector needs. Reader: the built-in role.')
param role string = 'ActivityLogReader'

@description('Id (GUID) of an existing role definition to assign, e.g. the Activity Log Reader defined at a management group above. Empty: the role chosen by `role` (the custom one is then defined here).')
param roleDefinitionGuid string = ''

@description('Name of the custom role defined here (unique in the tenant).')
param customRoleName string = 'Activity Log Reader (${subscription().subscriptionId})'

var activityLogReader = loadJsonContent('../activity-log-reader.json')
var readerRoleId = 'acdd72a7-3385-48ef-bd42-f606fba81ae7' // Reader (built-in)
var defineCustomRole = empty(roleDefinitionGuid) && role == 'ActivityLogReader'
var customRoleId = guid(subscription().id, customRoleName)
var roleId = !empty(roleDefinitionGuid) ? roleDefinitionGuid : (role == 'ActivityLogReader' ? customRoleId : readerRoleId)

resource activityLogReaderRole 'Microsoft.Authorization/roleDefinitions@2022-04-01' = if (defineCustomRole) {
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
    assignableScopes: [
      subscription().id
    ]
  }
}

resource subscriptionAssignment 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(subscription().id, principalId, roleId)
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roleId)
    principalId: principalId
    principalType: principalType
    description: 'Azure app connector: read this subscription and its Activity Log.'
  }
  dependsOn: [
    activityLogReaderRole
  ]
}

output roleAssignmentId string = subscriptionAssignment.id

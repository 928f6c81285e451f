// Reader on one subscription for the connector's managed identity. Used by reader-access.bicep
// for each listed subscription, or on its own:
//   az deployment sub create --subscription <subscription id> --location <region> \
//     --template-file infra/core/reader-subscription.bicep --parameters principalId=<principal id>

targetScope = 'subscription'

@description('Principal (object) id of the connector\'s managed identity.')
param principalId string

@allowed([
  'ServicePrincipal'
  'Group'
])
param principalType string = 'ServicePrincipal'

var readerRoleId = 'acdd72a7-3385-48ef-bd42-f606fba81ae7' // Reader

resource subscriptionReader 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(subscription().id, principalId, readerRoleId)
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', readerRoleId)
    principalId: principalId
    principalType: principalType
    description: 'Azure app connector: read this subscription and its Activity Log.'
  }
}

output roleAssignmentId string = subscriptionReader.id

// Lets the connector read Azure: grants its managed identity the Reader role, either
//  - on a management group (recommended): every subscription below it, present and future, is
//    readable, so subscriptions created later are picked up by the fan-out on their own; or
//  - on a fixed list of subscriptions (a subscription-scope assignment per id).
//
// Deploy at a management group. In the list mode, every listed subscription must sit below that
// management group (the tenant root group holds them all):
//   az deployment mg create --management-group-id <management group id> --location <region> \
//     --template-file infra/reader-access.bicep --parameters infra/reader-access.parameters.json \
//     --parameters principalId=<CONNECTOR_IDENTITY_PRINCIPAL_ID>
//
// Without rights at any management group, deploy core/reader-subscription.bicep to each
// subscription instead (az deployment sub create); see the README, "Deploying to Azure".

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
@description('managementGroup: Reader on the management group this is deployed to. subscriptions: Reader on each of subscriptionIds.')
param scopeMode string = 'managementGroup'

@description('Subscription ids to grant Reader on, when scopeMode is subscriptions.')
param subscriptionIds array = []

var readerRoleId = 'acdd72a7-3385-48ef-bd42-f606fba81ae7' // Reader

resource managementGroupReader 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (scopeMode == 'managementGroup') {
  name: guid(managementGroup().id, principalId, readerRoleId)
  properties: {
    roleDefinitionId: tenantResourceId('Microsoft.Authorization/roleDefinitions', readerRoleId)
    principalId: principalId
    principalType: principalType
    description: 'Azure app connector: read subscriptions and their Activity Log.'
  }
}

module subscriptionReader 'core/reader-subscription.bicep' = [for subscriptionId in subscriptionIds: if (scopeMode == 'subscriptions') {
  name: 'reader-${uniqueString(subscriptionId, principalId)}'
  scope: subscription(subscriptionId)
  params: {
    principalId: principalId
    principalType: principalType
  }
}]

output readerScope string = scopeMode == 'managementGroup' ? managementGroup().id : join(subscriptionIds, ',')

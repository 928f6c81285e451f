// Role assignments for the connector's managed identity, each at the narrowest scope that works:
// the storage account for data-plane access and the Application Insights component for telemetry.
// Reading Azure (Activity Log Reader, or Reader) is not granted here: see reader-access.bicep.

param storageAccountName string
param applicationInsightsName string

@description('Principal (object) id of the connector\'s user-assigned managed identity.')
param managedIdentityPrincipalId string

@description('Object id of a developer who gets the same data roles, when allowUserIdentityPrincipal is true.')
param userIdentityPrincipalId string = ''

@allowed([
  'User'
  'ServicePrincipal'
  'Group'
])
@description('Type of userIdentityPrincipalId: User, or ServicePrincipal when the deployment runs as one.')
param userIdentityPrincipalType string = 'User'

param allowUserIdentityPrincipal bool = false

// Built-in role definitions (ids are the same in every tenant).
// Host storage: deployment package container, host locks and timer schedule status (blob).
var storageBlobDataOwnerRoleId = 'b7e6dc6d-f1e8-4753-8033-0f276bb0955b' // Storage Blob Data Owner
// The pull queue: the fan-out enqueues, the queue trigger reads, deletes and poisons messages.
var storageQueueDataContributorRoleId = '974c5e8b-45b9-4653-ba55-5f855dd0fb88' // Storage Queue Data Contributor
// The connector's tables: created at start, then read and written (connector state, activities, accounts).
var storageTableDataContributorRoleId = '0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3' // Storage Table Data Contributor
// Telemetry to Application Insights with Entra ID authentication (local authentication is off).
var monitoringMetricsPublisherRoleId = '3913510d-42f4-4e42-8a64-420c390055eb' // Monitoring Metrics Publisher

var storageRoleIds = [
  storageBlobDataOwnerRoleId
  storageQueueDataContributorRoleId
  storageTableDataContributorRoleId
]

var grantUser = allowUserIdentityPrincipal && !empty(userIdentityPrincipalId)

resource storageAccount 'Microsoft.Storage/storageAccounts@2023-05-01' existing = {
  name: storageAccountName
}

resource applicationInsights 'Microsoft.Insights/components@2020-02-02' existing = {
  name: applicationInsightsName
}

resource storageRoles 'Microsoft.Authorization/roleAssignments@2022-04-01' = [for roleId in storageRoleIds: {
  name: guid(storageAccount.id, managedIdentityPrincipalId, roleId)
  scope: storageAccount
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roleId)
    principalId: managedIdentityPrincipalId
    principalType: 'ServicePrincipal'
  }
}]

resource monitoringRole 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(applicationInsights.id, managedIdentityPrincipalId, monitoringMetricsPublisherRoleId)
  scope: applicationInsights
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', monitoringMetricsPublisherRoleId)
    principalId: managedIdentityPrincipalId
    principalType: 'ServicePrincipal'
  }
}

resource userStorageRoles 'Microsoft.Authorization/roleAssignments@2022-04-01' = [for roleId in storageRoleIds: if (grantUser) {
  name: guid(storageAccount.id, userIdentityPrincipalId, roleId)
  scope: storageAccount
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roleId)
    principalId: userIdentityPrincipalId
    principalType: userIdentityPrincipalType
  }
}]

resource userMonitoringRole 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (grantUser) {
  name: guid(applicationInsights.id, userIdentityPrincipalId, monitoringMetricsPublisherRoleId)
  scope: applicationInsights
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', monitoringMetricsPublisherRoleId)
    principalId: userIdentityPrincipalId
    principalType: userIdentityPrincipalType
  }
}

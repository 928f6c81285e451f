// The connector's user-assigned managed identity: the app runs as it for Storage, Application
// Insights and Azure Resource Manager, and the Reader role (reader-access.bicep) is granted to it.

@description('Name of the user-assigned managed identity.')
param name string
param location string = resourceGroup().location
param tags object = {}

resource identity 'Microsoft.ManagedIdentity/userAssignedIdentities@2023-01-31' = {
  name: name
  location: location
  tags: tags
}

output name string = identity.name
output resourceId string = identity.id
output principalId string = identity.properties.principalId
output clientId string = identity.properties.clientId

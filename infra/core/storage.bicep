// The storage account behind the host (AzureWebJobsStorage) and the app: the Flex Consumption
// deployment package container and host locks (blob), the pull queue and its poison queue, and the
// tables the app creates at start. Shared keys are disabled: every client uses Entra ID.

@minLength(3)
@maxLength(24)
@description('Storage account name: 3-24 lower-case letters and digits, unique in Azure.')
param name string
param location string = resourceGroup().location
param tags object = {}

@description('Blob containers to create (the Flex Consumption deployment package container).')
param containerNames array = []

@description('Queues to create (the pull queue and its poison queue).')
param queueNames array = []

resource storage 'Microsoft.Storage/storageAccounts@2023-05-01' = {
  name: name
  location: location
  tags: tags
  kind: 'StorageV2'
  sku: {
    name: 'Standard_LRS'
  }
  properties: {
    accessTier: 'Hot'
    minimumTlsVersion: 'TLS1_2'
    supportsHttpsTrafficOnly: true
    allowBlobPublicAccess: false
    allowSharedKeyAccess: false
    defaultToOAuthAuthentication: true
    allowCrossTenantReplication: false
    dnsEndpointType: 'Standard'
    // Reachable from public networks, on purpose: a Flex Consumption app without virtual network
    // integration reaches its storage (host storage, deployment package, queues, tables) over the
    // public endpoints, and the Functions platform is not one of the "trusted services" a storage
    // firewall lets through. Access is still Entra ID only (no shared keys, no anonymous blobs,
    // TLS 1.2). Closing it needs VNet integration and private endpoints: see the README.
    publicNetworkAccess: 'Enabled'
    networkAcls: {
      bypass: 'AzureServices'
      defaultAction: 'Allow'
    }
  }

  resource blobServices 'blobServices' = {
    name: 'default'

    resource containers 'containers' = [for containerName in containerNames: {
      name: containerName
      properties: {
        publicAccess: 'None'
      }
    }]
  }

  resource queueServices 'queueServices' = {
    name: 'default'

    resource queues 'queues' = [for queueName in queueNames: {
      name: queueName
    }]
  }
}

output name string = storage.name
output resourceId string = storage.id
output primaryBlobEndpoint string = storage.properties.primaryEndpoints.blob
output primaryQueueEndpoint string = storage.properties.primaryEndpoints.queue
output primaryTableEndpoint string = storage.properties.primaryEndpoints.table

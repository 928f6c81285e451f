// The Function App on a Flex Consumption (FC1) plan, running as the user-assigned identity.
// The deployment package lives in a blob container reached with that identity, and the app
// settings come whole from main.bicep (this resource replaces the app's settings on each deploy).

param name string
param planName string
param location string = resourceGroup().location
param tags object = {}

@description('azd service name (azure.yaml) that this app is deployed as.')
param serviceName string = 'api'

@description('Resource id of the user-assigned managed identity the app runs as.')
param identityId string

@description('Primary blob endpoint of the storage account (ends with a slash).')
param storageBlobEndpoint string

@description('Blob container that holds the deployment package.')
param deploymentContainerName string

@allowed(['python'])
param runtimeName string = 'python'

@allowed(['3.10', '3.11', '3.12'])
param runtimeVersion string = '3.11'

@allowed([2048, 4096])
param instanceMemoryMB int = 2048

@minValue(40)
@maxValue(1000)
param maximumInstanceCount int = 100

@description('Every app setting, as name: value.')
param appSettings object

// PYTHON_THREADPOOL_THREAD_COUNT: the Python worker's threads for synchronous functions. A caught-up
// pull mostly waits on ARM, so one instance runs host.json's batchSize + newBatchThreshold pulls at
// once, each on its own thread (the worker's default, CPU count + 4, would leave most waiting).
@minValue(1)
@maxValue(64)
param pythonThreadpoolThreadCount int = 32

param enableEasyAuth bool = false

@description('Client (application) id of the API app registration that Easy Auth validates tokens for.')
param easyAuthClientId string = ''

@description('Issuer of the tokens Easy Auth accepts: <authority>/<tenant id>/v2.0.')
param easyAuthOpenIdIssuer string = ''

resource plan 'Microsoft.Web/serverfarms@2024-04-01' = {
  name: planName
  location: location
  tags: tags
  kind: 'functionapp'
  sku: {
    tier: 'FlexConsumption'
    name: 'FC1'
  }
  properties: {
    reserved: true
  }
}

resource functionApp 'Microsoft.Web/sites@2024-04-01' = {
  name: name
  location: location
  tags: union(tags, { 'azd-service-name': serviceName })
  kind: 'functionapp,linux'
  identity: {
    type: 'UserAssigned'
    userAssignedIdentities: {
      '${identityId}': {}
    }
  }
  properties: {
    serverFarmId: plan.id
    httpsOnly: true
    // Key Vault references in app settings (ALERT_WEBHOOK_SECRET) are resolved with the app's
    // user-assigned identity; without this the platform tries a system-assigned one, which it has not.
    keyVaultReferenceIdentity: identityId
    siteConfig: {
      minTlsVersion: '1.2'
    }
    functionAppConfig: {
      deployment: {
        storage: {
          type: 'blobContainer'
          value: '${storageBlobEndpoint}${deploymentContainerName}'
          authentication: {
            type: 'UserAssignedIdentity'
            userAssignedIdentityResourceId: identityId
          }
        }
      }
      scaleAndConcurrency: {
        instanceMemoryMB: instanceMemoryMB
        maximumInstanceCount: maximumInstanceCount
      }
      runtime: {
        name: runtimeName
        version: runtimeVersion
      }
    }
  }

  resource settings 'config' = {
    name: 'appsettings'
    properties: union(appSettings, {
      PYTHON_THREADPOOL_THREAD_COUNT: string(pythonThreadpoolThreadCount)
    })
  }

  // No publishing user names and passwords: azd and the CLI deploy with Entra ID tokens.
  resource ftpCredentials 'basicPublishingCredentialsPolicies' = {
    name: 'ftp'
    properties: {
      allow: false
    }
  }

  resource scmCredentials 'basicPublishingCredentialsPolicies' = {
    name: 'scm'
    properties: {
      allow: false
    }
  }

  // Optional App Service Authentication: the platform rejects requests without a valid Entra ID
  // bearer token for the API before they reach the code (which validates them again, and checks
  // the caller's directory roles). The portal's page and files are excluded: they carry no data
  // and the browser loads them before anyone has signed in; so is the troubleshooting catalog,
  // which the portal reads without a token (it carries no data either).
  // Written after the app settings: both update the site's configuration, and two concurrent
  // writes to it can fail (or one can undo the other).
  resource authSettings 'config' = if (enableEasyAuth) {
    name: 'authsettingsV2'
    dependsOn: [
      settings
    ]
    properties: {
      platform: {
        enabled: true
      }
      globalValidation: {
        requireAuthentication: true
        unauthenticatedClientAction: 'Return401'
        excludedPaths: [
          '/api/portal'
          '/api/portal/'
          '/api/portal/*'
          '/api/troubleshooting'
        ]
      }
      httpSettings: {
        requireHttps: true
      }
      identityProviders: {
        azureActiveDirectory: {
          enabled: true
          registration: {
            clientId: easyAuthClientId
            openIdIssuer: easyAuthOpenIdIssuer
          }
          validation: {
            allowedAudiences: [
              easyAuthClientId
              'api://${easyAuthClientId}'
            ]
          }
        }
      }
      login: {
        tokenStore: {
          enabled: false
        }
      }
    }
  }
}

output name string = functionApp.name
output uri string = 'https://${functionApp.properties.defaultHostName}'

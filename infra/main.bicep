// The Azure app connector on Azure Functions Flex Consumption (FC1).
//
// Deploy with `azd up`, or:
//   az deployment sub create --location <region> --template-file infra/main.bicep \
//     --parameters environmentName=<name> location=<region> connectorApiAudience=<app id>
//
// Everything authenticates with one user-assigned managed identity: the storage account refuses
// shared keys, Application Insights refuses instrumentation-key-only ingestion, and no app setting
// holds a secret. Reading Azure (the Activity Log Reader role, or Reader, over the subscriptions to
// monitor) is granted separately, with reader-access.bicep or the Azure CLI: see the README,
// "Deploying to Azure".
//
// infra/main.parameters.json maps every parameter azd users may set to an azd environment variable
// of the app setting's name, with the Bicep default as fallback (`${NAME=default}`): an unset or
// empty variable then deploys the default on every azd version.

targetScope = 'subscription'

// ---------------------------------------------------------------------------------------------
// Environment
// ---------------------------------------------------------------------------------------------

@minLength(1)
@maxLength(64)
@description('Name of the environment, used to name the resource group and to derive a unique token for every resource name.')
param environmentName string

// Regions that offer the Flex Consumption plan (az functionapp list-flexconsumption-locations).
// azd only offers these when it asks for a region; any other is refused before anything is created.
// When Flex Consumption reaches a new region, add it here.
@minLength(1)
@allowed([
  'australiaeast'
  'australiasoutheast'
  'brazilsouth'
  'canadacentral'
  'centralindia'
  'centralus'
  'eastasia'
  'eastus'
  'eastus2'
  'francecentral'
  'germanywestcentral'
  'italynorth'
  'japaneast'
  'koreacentral'
  'northcentralus'
  'northeurope'
  'norwayeast'
  'southafricanorth'
  'southcentralus'
  'southeastasia'
  'southindia'
  'spaincentral'
  'swedencentral'
  'uaenorth'
  'uksouth'
  'ukwest'
  'westcentralus'
  'westeurope'
  'westus'
  'westus2'
  'westus3'
])
@description('Region for every resource. It must offer the Flex Consumption plan: az functionapp list-flexconsumption-locations -o table.')
@metadata({
  azd: {
    type: 'location'
  }
})
param location string

@description('Resource group name. Default: rg-<environmentName>.')
param resourceGroupName string = ''

@description('Function app name. Default: func-api-<token>.')
param functionAppName string = ''

@description('Storage account name (3-24 lower-case letters and digits). Default: st<token>.')
param storageAccountName string = ''

@description('Object id of a user who may read and write the connector\'s queues, tables and blobs for debugging. Only used when grantDeveloperDataAccess is true.')
param principalId string = ''

@allowed([
  'User'
  'ServicePrincipal'
  'Group'
])
@description('Type of principalId: User, or ServicePrincipal when azd runs signed in as one (azd sets AZURE_PRINCIPAL_TYPE).')
param principalType string = 'User'

@description('Also grant principalId the storage data roles and Monitoring Metrics Publisher (development only; production needs false).')
param grantDeveloperDataAccess bool = false

@allowed([2048, 4096])
@description('Memory of each Flex Consumption instance, in MB.')
param instanceMemoryMB int = 2048

@minValue(40)
@maxValue(1000)
@description('Upper bound on Flex Consumption instances (the queue-triggered pulls scale out up to this).')
param maximumInstanceCount int = 100

@description('Put App Service Authentication (Easy Auth) in front of the app: Entra ID bearer tokens are validated by the platform before the code runs. The code validates them regardless.')
param enableEasyAuth bool = false

@description('Client (application) id that Easy Auth accepts tokens for. Default: connectorApiAudience.')
param easyAuthClientId string = ''

// ---------------------------------------------------------------------------------------------
// App settings that the connector reads (core/settings.py). Defaults equal the code's defaults.
// ---------------------------------------------------------------------------------------------

@minLength(1)
@description('CONNECTOR_API_AUDIENCE: the `aud` that callers\' tokens must carry. With access token version 2 this is the API app registration\'s application (client) id; infra/scripts/create-api-app-registration.sh prints it.')
param connectorApiAudience string

@description('PORTAL_CLIENT_ID: the client id the portal (a single-page app) signs in with. Default (empty): the API app registration\'s own, taken from connectorApiAudience.')
param portalClientId string = ''

// Empty means "this cloud's" (an unset azd variable arrives as an empty string on some azd versions).
@description('ARM_ENDPOINT: Azure Resource Manager base URL (https). Default (empty): this cloud\'s.')
param armEndpoint string = ''

@description('AZURE_AUTHORITY_HOST: Entra ID authority (https). Default (empty): this cloud\'s.')
param azureAuthorityHost string = ''

@minValue(0)
@description('TOKEN_CLOCK_SKEW_SECONDS: clock skew tolerated when validating callers\' tokens.')
param tokenClockSkewSeconds int = 120

@description('FANOUT_SCHEDULE: NCRONTAB schedule (six fields) of the fan-out timer.')
param fanoutSchedule string = '0 */5 * * * *'

@minLength(3)
@maxLength(56)
@description('PULL_QUEUE: name of the pull queue. The queue and <name>-poison are created here.')
param pullQueue string = 'activity-pull'

@minValue(1)
@description('POLICY_DAILY_ALERT_LIMIT: alerts one policy may raise in a day before it is paused.')
param policyDailyAlertLimit int = 100

@minLength(3)
@maxLength(56)
@description('ALERT_QUEUE: name of the webhook delivery queue. The queue and <name>-poison are created here.')
param alertQueue string = 'alert-notify'

@secure()
@description('ALERT_WEBHOOK_SECRET: the key that signs webhook bodies (at least 32 bytes), best a Key Vault reference: @Microsoft.KeyVault(SecretUri=...). Empty: policies cannot have webhooks.')
param alertWebhookSecret string = ''

@minValue(0)
@description('PULL_OVERLAP_SECONDS: how far behind the watermark each pull re-reads, for late events.')
param pullOverlapSeconds int = 900

@minValue(0)
@description('PULL_LAG_SECONDS: how far behind now each pull stops.')
param pullLagSeconds int = 60

@minValue(1)
@description('PULL_MAX_PAGES: Activity Log pages read by one pull before it hands over to the next message.')
param pullMaxPages int = 25

@minValue(1)
@description('PULL_MAX_WINDOW_MINUTES: widest time window one pull asks the Activity Log for.')
param pullMaxWindowMinutes int = 360

@minValue(0)
@description('PULL_MAX_INLINE_WAIT_SECONDS: longest Retry-After a pull waits for in place before re-queueing itself.')
param pullMaxInlineWaitSeconds int = 10

@minValue(1)
@description('PULL_LEASE_SECONDS: how long one pull holds its subscription\'s lease.')
param pullLeaseSeconds int = 600

@minValue(1)
@description('ACTIVITY_RETENTION_DAYS: activities older than this are deleted.')
param activityRetentionDays int = 180

@description('RETENTION_SCHEDULE: NCRONTAB schedule (six fields) of the daily retention timer.')
param retentionSchedule string = '0 30 2 * * *'

@minLength(1)
@maxLength(30)
@description('STORAGE_TABLE_PREFIX: prefix of the tables the app creates (a letter, then letters and digits).')
param storageTablePrefix string = 'azconn'

// ---------------------------------------------------------------------------------------------
// Names
// ---------------------------------------------------------------------------------------------

var resourceToken = toLower(uniqueString(subscription().id, environmentName, location))
var armEndpointValue = !empty(armEndpoint) ? armEndpoint : environment().resourceManager
var azureAuthorityHostValue = !empty(azureAuthorityHost) ? azureAuthorityHost : environment().authentication.loginEndpoint
var authorityWithSlash = endsWith(azureAuthorityHostValue, '/') ? azureAuthorityHostValue : '${azureAuthorityHostValue}/'
var tags = { 'azd-env-name': environmentName }
var appName = !empty(functionAppName) ? functionAppName : 'func-api-${resourceToken}'
var deploymentContainerName = 'app-package-${take(toLower(appName), 32)}-${take(toLower(uniqueString(appName, resourceToken)), 7)}'
var queueNames = [
  pullQueue
  '${pullQueue}-poison'
  alertQueue
  '${alertQueue}-poison'
]

resource rg 'Microsoft.Resources/resourceGroups@2024-03-01' = {
  name: !empty(resourceGroupName) ? resourceGroupName : 'rg-${environmentName}'
  location: location
  tags: tags
}

// ---------------------------------------------------------------------------------------------
// Resources
// ---------------------------------------------------------------------------------------------

module identity 'core/identity.bicep' = {
  name: 'identity'
  scope: rg
  params: {
    name: 'id-api-${resourceToken}'
    location: location
    tags: tags
  }
}

module storage 'core/storage.bicep' = {
  name: 'storage'
  scope: rg
  params: {
    name: !empty(storageAccountName) ? storageAccountName : 'st${resourceToken}'
    location: location
    tags: tags
    containerNames: [deploymentContainerName]
    queueNames: queueNames
  }
}

module monitoring 'core/monitoring.bicep' = {
  name: 'monitoring'
  scope: rg
  params: {
    logAnalyticsName: 'log-${resourceToken}'
    applicationInsightsName: 'appi-${resourceToken}'
    location: location
    tags: tags
  }
}

module rbac 'rbac.bicep' = {
  name: 'rbac'
  scope: rg
  params: {
    storageAccountName: storage.outputs.name
    applicationInsightsName: monitoring.outputs.applicationInsightsName
    managedIdentityPrincipalId: identity.outputs.principalId
    userIdentityPrincipalId: principalId
    userIdentityPrincipalType: principalType
    allowUserIdentityPrincipal: grantDeveloperDataAccess
  }
}

// Every app setting the app receives. Not set, on purpose: the connection-string form of
// AzureWebJobsStorage (shared keys are disabled) and the client-secret setting (the managed
// identity is used instead). FUNCTIONS_WORKER_RUNTIME and FUNCTIONS_EXTENSION_VERSION are not app
// settings on Flex Consumption: functionAppConfig.runtime carries them.
var appSettings = {
  // Host and app storage: identity-based connection through the user-assigned identity.
  AzureWebJobsStorage__accountName: storage.outputs.name
  AzureWebJobsStorage__blobServiceUri: storage.outputs.primaryBlobEndpoint
  AzureWebJobsStorage__queueServiceUri: storage.outputs.primaryQueueEndpoint
  AzureWebJobsStorage__tableServiceUri: storage.outputs.primaryTableEndpoint
  AzureWebJobsStorage__credential: 'managedidentity'
  AzureWebJobsStorage__clientId: identity.outputs.clientId

  // Application Insights with Entra ID authentication (local authentication is disabled).
  APPLICATIONINSIGHTS_CONNECTION_STRING: monitoring.outputs.applicationInsightsConnectionString
  APPLICATIONINSIGHTS_AUTHENTICATION_STRING: 'ClientId=${identity.outputs.clientId};Authorization=AAD'

  // Azure and Entra ID: the managed identity reads ARM (AZURE_CLIENT_ID selects it).
  ARM_ENDPOINT: armEndpointValue
  AZURE_AUTHORITY_HOST: azureAuthorityHostValue
  AZURE_TENANT_ID: tenant().tenantId
  AZURE_CLIENT_ID: identity.outputs.clientId
  CONNECTOR_API_AUDIENCE: connectorApiAudience
  PORTAL_CLIENT_ID: portalClientId
  TOKEN_CLOCK_SKEW_SECONDS: string(tokenClockSkewSeconds)

  // Fan-out and pull.
  FANOUT_SCHEDULE: fanoutSchedule
  PULL_QUEUE: pullQueue
  PULL_OVERLAP_SECONDS: string(pullOverlapSeconds)
  PULL_LAG_SECONDS: string(pullLagSeconds)
  PULL_MAX_PAGES: string(pullMaxPages)
  PULL_MAX_WINDOW_MINUTES: string(pullMaxWindowMinutes)
  PULL_MAX_INLINE_WAIT_SECONDS: string(pullMaxInlineWaitSeconds)
  PULL_LEASE_SECONDS: string(pullLeaseSeconds)

  // Policies and alerts (the webhook secret: a Key Vault reference, resolved by the platform).
  POLICY_DAILY_ALERT_LIMIT: string(policyDailyAlertLimit)
  ALERT_QUEUE: alertQueue
  ALERT_WEBHOOK_SECRET: alertWebhookSecret

  // Retention and storage names.
  ACTIVITY_RETENTION_DAYS: string(activityRetentionDays)
  RETENTION_SCHEDULE: retentionSchedule
  STORAGE_TABLE_PREFIX: storageTablePrefix
}

module api 'app/api.bicep' = {
  name: 'api'
  scope: rg
  params: {
    name: appName
    planName: 'plan-${resourceToken}'
    location: location
    tags: tags
    serviceName: 'api'
    identityId: identity.outputs.resourceId
    storageBlobEndpoint: storage.outputs.primaryBlobEndpoint
    deploymentContainerName: deploymentContainerName
    runtimeName: 'python'
    runtimeVersion: '3.11'
    instanceMemoryMB: instanceMemoryMB
    maximumInstanceCount: maximumInstanceCount
    appSettings: appSettings
    enableEasyAuth: enableEasyAuth
    easyAuthClientId: !empty(easyAuthClientId) ? easyAuthClientId : connectorApiAudience
    easyAuthOpenIdIssuer: '${authorityWithSlash}${tenant().tenantId}/v2.0'
  }
  // The app starts using storage at once: create its role assignments first.
  dependsOn: [
    rbac
  ]
}

// ---------------------------------------------------------------------------------------------
// Outputs (azd stores them in .azure/<env>/.env)
// ---------------------------------------------------------------------------------------------

output AZURE_LOCATION string = location
output AZURE_TENANT_ID string = tenant().tenantId
output AZURE_RESOURCE_GROUP string = rg.name
output AZURE_FUNCTION_APP_NAME string = api.outputs.name
output SERVICE_API_NAME string = api.outputs.name
output SERVICE_API_URI string = api.outputs.uri
output AZURE_STORAGE_ACCOUNT_NAME string = storage.outputs.name
output CONNECTOR_IDENTITY_NAME string = identity.outputs.name
output CONNECTOR_IDENTITY_PRINCIPAL_ID string = identity.outputs.principalId
output CONNECTOR_IDENTITY_CLIENT_ID string = identity.outputs.clientId
output CONNECTOR_QUEUES array = queueNames

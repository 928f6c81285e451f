"""The Function App: wiring only. Each blueprint lives with the package that owns its concern."""

import azure.functions as func

from activity_api.blueprint import bp as activity_api_bp
from connector.blueprint import bp as connector_bp
from core.runtime import configure_logging
from ingestion.blueprint import bp as ingestion_bp
from policies.blueprint import bp as policies_bp
from portal.blueprint import bp as portal_bp

configure_logging()

app = func.FunctionApp(http_auth_level=func.AuthLevel.FUNCTION)
app.register_functions(connector_bp)
app.register_functions(ingestion_bp)
app.register_functions(activity_api_bp)
app.register_functions(portal_bp)
app.register_functions(policies_bp)

"""`serve run bench.one_deployment:app`: bench.plain_app's handler as a single Serve deployment."""
from bench.plain_app import one_deployment_app

app = one_deployment_app()

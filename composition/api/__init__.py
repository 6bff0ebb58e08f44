"""sealscope's HTTP API (FastAPI) and its built-in web page.

``create_app(settings)`` builds the app; its lifespan opens the stores that were not
injected and closes them again. No authentication yet: every route is open to whoever can
reach the port, so bind it to loopback (the default ``api_host``) until API keys and scopes
arrive.
"""

from composition.api.app import create_app

__all__ = ["create_app"]

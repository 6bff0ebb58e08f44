"""sealscope's HTTP API (FastAPI) and its built-in web page.

``create_app(settings)`` builds the app; its lifespan opens the stores that were not
injected and closes them again. Callers authenticate with an API key or a browser session
and see only their scope (docs/access.md).
"""

from composition.api.app import create_app

__all__ = ["create_app"]

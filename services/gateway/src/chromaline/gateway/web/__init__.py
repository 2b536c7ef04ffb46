"""The web app for people, served by the gateway at ``/``: one HTML page, ES modules and CSS.

There is no build step: the files under ``static/`` are what the browser runs. The app talks
only to the public ``/api/v1`` API, like any other client.
"""

from chromaline.gateway.web.routes import build_web_router, mount_web

__all__ = ["build_web_router", "mount_web"]

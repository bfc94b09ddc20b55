"""The WSGI entry point gunicorn loads: the app built from the environment."""

from __future__ import annotations

from ..config import Settings
from ..web.app import create_app


def build(settings: Settings | None = None):
    """The application over the services `settings` name (web/services.py builds them)."""
    return create_app(settings or Settings.from_env())


application = build()

"""gunicorn reads ./gunicorn.conf.py by itself: in a checkout, a plain `gunicorn`
gets the settings of `banners serve`, which live in the package (so that an
installed wheel has them too)."""

from banner_server.hosting.gunicorn_conf import *  # noqa: F401,F403

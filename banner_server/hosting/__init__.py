"""How workers are started: gunicorn's settings, the meinheld worker class, the WSGI
entry point gunicorn loads, and the log formats."""

"""gunicorn's command line as `banners serve` starts it (`python -m banner_server.hosting.gunicorn_run`).

The same as `python -m gunicorn`, except that a Ctrl-C landing while gunicorn is
still importing (before its signal handlers exist) ends quietly with status 130
instead of a KeyboardInterrupt traceback.
"""

import sys

if __name__ == "__main__":
    try:
        from gunicorn.app.wsgiapp import run

        run(prog="gunicorn")
    except KeyboardInterrupt:
        sys.exit(130)

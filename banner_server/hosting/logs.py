"""Log lines for people (gunicorn's text) or for machines (`--log-format json`).

In JSON every line is one object: time (UTC, ISO 8601), level, logger, pid,
message, and for requests the fields of the access line; json.dumps escapes
control characters, so no field can break a line.  The server's own logger
(`banner_server`: Redis state changes, start-up notes) writes through gunicorn's
error log, so both formats cover it.
"""

from __future__ import annotations

import datetime as dt
import json
import logging

from gunicorn.glogging import Logger


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        out = {
            "time": dt.datetime.fromtimestamp(record.created, dt.timezone.utc).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "pid": record.process,
            "message": record.getMessage(),
        }
        fields = getattr(record, "fields", None)
        if fields:
            out.update(fields)
        if record.exc_info:
            out["error"] = self.formatException(record.exc_info)
        return json.dumps(out, ensure_ascii=False, default=str)


class BannersLogger(Logger):
    """gunicorn's logger, with JSON formatters when BANNERS_LOG_FORMAT=json."""

    json = False

    def setup(self, cfg):
        super().setup(cfg)
        if self.json:
            formatter = JsonFormatter()
            for log in (self.error_log, self.access_log):
                for handler in log.handlers:
                    handler.setFormatter(formatter)
        app_log = logging.getLogger("banner_server")
        app_log.handlers = list(self.error_log.handlers)
        app_log.propagate = False


class JsonLogger(BannersLogger):
    json = True

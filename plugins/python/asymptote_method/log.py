"""Logging for methods: JSON lines on stderr in go-plugin's format.

The host reads a plugin's stderr line by line; a JSON line with @message,
@level and @timestamp becomes a structured entry in the agent's log under
the method's name, with its other keys kept as attributes. Anything else on
stderr is logged as plain text and kept in the tail the host reports when a
trial fails.
"""

from __future__ import annotations

import datetime
import json
import logging
import os
import sys
from typing import Any, TextIO

# LOG_LEVEL_ENV names the environment variable the agent sets to its own
# level (debug, info, warn or error); plugins/sdk.LogLevelEnv.
LOG_LEVEL_ENV = "ASYMPTOTE_LOG_LEVEL"

_LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warn": logging.WARNING, "error": logging.ERROR}
_NAMES = {logging.DEBUG: "debug", logging.INFO: "info", logging.WARNING: "warn", logging.ERROR: "error",
          logging.CRITICAL: "error"}

# Attributes every LogRecord has; the rest came from extra= and are kept.
_STANDARD = set(vars(logging.makeLogRecord({}))) | {"message", "asctime"}


class JSONFormatter(logging.Formatter):
    """Formats a record as one go-plugin JSON line; extra= keys become
    attributes and an exception's traceback goes under "error"."""

    def format(self, record: logging.LogRecord) -> str:
        ts = datetime.datetime.fromtimestamp(record.created, datetime.timezone.utc)
        out: dict[str, Any] = {
            "@level": _NAMES.get(record.levelno, "info"),
            "@message": record.getMessage(),
            "@timestamp": ts.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
        }
        for k, v in vars(record).items():
            if k not in _STANDARD and not k.startswith("_"):
                out[k] = v
        if record.exc_info:
            out["error"] = self.formatException(record.exc_info)
        return json.dumps(out, default=str)


def level_from_env() -> int:
    """Returns the level named by ASYMPTOTE_LOG_LEVEL (default info)."""
    return _LEVELS.get(os.environ.get(LOG_LEVEL_ENV, "").lower(), logging.INFO)


def setup(stream: TextIO | None = None) -> logging.Logger:
    """Points the "asymptote" logger at stream (default stderr) in the JSON
    format, at the agent's level, and returns it. Loggers under it, such as
    logger("torch_charlm"), share the handler."""
    log = logging.getLogger("asymptote")
    for h in list(log.handlers):
        log.removeHandler(h)
    h = logging.StreamHandler(stream or sys.stderr)
    h.setFormatter(JSONFormatter())
    log.addHandler(h)
    log.setLevel(level_from_env())
    log.propagate = False
    return log


def logger(name: str = "") -> logging.Logger:
    """Returns the method's logger (a child of "asymptote"). Pass trial
    attributes with extra=, for example extra={"trial_id": req.trial_id}."""
    return logging.getLogger("asymptote." + name if name else "asymptote")

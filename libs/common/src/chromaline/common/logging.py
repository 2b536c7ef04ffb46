"""structlog configured once per process: JSON in production, readable in a terminal.

Standard-library loggers (uvicorn, aio-pika, sqlalchemy) go through the same processors, so
every line carries the bound correlation id, and the trace and span ids of the current span,
whichever library wrote it.
"""

from __future__ import annotations

import logging
import re
import sys
from typing import Literal

import structlog
from structlog.typing import EventDict, Processor

from chromaline.common.tracing import current_span_ids

_configured = False


def configure_logging(
    level: str = "INFO", fmt: Literal["auto", "json", "console"] = "auto", service: str | None = None
) -> None:
    global _configured
    if _configured:
        return
    use_json = fmt == "json" or (fmt == "auto" and not sys.stderr.isatty())
    shared: list[Processor] = [
        redact_credentials,
        structlog.contextvars.merge_contextvars,
        add_trace_ids,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.StackInfoRenderer(),
    ]
    renderer: Processor = (
        structlog.processors.JSONRenderer() if use_json else structlog.dev.ConsoleRenderer(colors=False)
    )
    structlog.configure(
        processors=[*shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=shared,
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            structlog.processors.format_exc_info if use_json else _passthrough,
            renderer,
        ],
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for noisy in ("aiormq", "aio_pika", "botocore", "urllib3", "asyncio"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))
    if service:
        structlog.contextvars.bind_contextvars(service=service)
    _configured = True


_CREDENTIAL_IN_QUERY = re.compile(r"(\baccess_token=)[^&\s\"']+")
REDACTED = "[redacted]"


def redact_credentials(logger: object, method_name: str, event_dict: EventDict) -> EventDict:
    """Blank the credentials a URL's query carries (``access_token=…``: browsers give progress
    WebSockets no headers), which the server logs with the path it answered."""
    return {
        key: _CREDENTIAL_IN_QUERY.sub(rf"\g<1>{REDACTED}", value) if isinstance(value, str) else value
        for key, value in event_dict.items()
    }


def add_trace_ids(logger: object, method_name: str, event_dict: EventDict) -> EventDict:
    """Name the current span (``trace_id``, ``span_id``, in hex as tracing tools show them)."""
    ids = current_span_ids()
    if ids is not None:
        event_dict["trace_id"], event_dict["span_id"] = ids
    return event_dict


def _passthrough(
    logger: object, method_name: str, event_dict: structlog.typing.EventDict
) -> structlog.typing.EventDict:
    return event_dict


def get_logger(name: str) -> structlog.stdlib.BoundLogger:
    logger: structlog.stdlib.BoundLogger = structlog.stdlib.get_logger(name)
    return logger

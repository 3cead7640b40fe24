"""Logging: the one place it is set up.

ftctl's modules log through :func:`get_logger`: structlog loggers (fields bound with
``bind``, the run's ``index`` and ``run_id`` merged from context variables) that hand each
event to the standard library's ``logging`` — logger ``ftctl.<component>``, the message is
the event, the fields are the record's extras. So an application that embeds ftctl decides
with its usual logging configuration what it sees of ftctl; unconfigured, ``logging``'s
defaults apply (warnings and errors on stderr, nothing on stdout).

The CLI calls :func:`configure`, which installs one stderr handler on the root logger. Its
:class:`structlog.stdlib.ProcessorFormatter` renders every record through the same
pipeline — ftctl's events and any other library's plain records (redis-py's) alike — as
console lines or, with ``json``, one JSON object per line. The handler also keeps a live
status line (:func:`show_status`, the CLI's progress line on a terminal) below the log lines,
and drops the periodic progress records while that line shows them.
"""

from __future__ import annotations

import logging
import shutil
import sys
import threading
from collections.abc import MutableMapping
from typing import Any, Literal, cast

import structlog

from ftctl.text import printable

LogFormat = Literal["console", "json"]

PROGRESS_LOGGER = "ftctl.progress"
"""The logger of periodic progress lines (``progress``); see :func:`show_status`."""

_NOT_EXTRAS = frozenset({"exc_info", "stack_info", "stacklevel"})
_RESERVED = (
    frozenset(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {"message", "asctime"}
) - _NOT_EXTRAS
"""LogRecord attributes: an extra with one of these names would make ``logging`` raise."""


def _unreserved(
    logger: Any, method: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """Rename fields that ``logging`` keeps for itself (``name``, ``module``…): ``name_``."""
    for key in [k for k in event_dict if k in _RESERVED]:
        event_dict[f"{key}_"] = event_dict.pop(key)
    return event_dict


PROCESSORS: list[structlog.typing.Processor] = [
    structlog.stdlib.filter_by_level,
    structlog.contextvars.merge_contextvars,
    _unreserved,
    structlog.stdlib.render_to_log_kwargs,
]
"""What an ftctl logger does before ``logging`` takes over: drop what the level filters
out, add the context's fields, pass the event as the message and the fields as extras."""


def _record_extras(
    logger: Any, method: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """The record's extras (an ftctl event's fields) as fields; not what ``logging`` or
    another handler's formatter put on the record (``message``, ``asctime``)."""
    record = event_dict.get("_record")
    if record is not None:
        for key, value in record.__dict__.items():
            if key not in _RESERVED and key not in _NOT_EXTRAS and not key.startswith("_"):
                event_dict.setdefault(key, value)
    return event_dict


_PRE_CHAIN: list[structlog.typing.Processor] = [
    _record_extras,
    structlog.contextvars.merge_contextvars,
    structlog.stdlib.add_log_level,
    structlog.stdlib.add_logger_name,
    structlog.processors.TimeStamper(fmt="iso", utc=True),
]
"""What the formatter adds to every record before rendering (ftctl's and others' alike)."""


def get_logger(name: str) -> structlog.stdlib.BoundLogger:
    """A structlog logger writing to the ``logging`` logger ``name`` (``ftctl.run``…)."""
    return cast(
        structlog.stdlib.BoundLogger,
        structlog.wrap_logger(
            logging.getLogger(name),
            processors=PROCESSORS,
            wrapper_class=structlog.stdlib.BoundLogger,
        ),
    )


# --- stderr, with a live status line below the log lines ------------------------------------


class _Status:
    """The live status line at the bottom of stderr, and the lock every write takes."""

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.text = ""

    @staticmethod
    def _fit(text: str) -> str:
        width = shutil.get_terminal_size((100, 24)).columns - 1
        return text[:width]

    def show(self, text: str | None) -> None:
        with self.lock:
            shown, self.text = self.text, self._fit(text or "")
            if shown or self.text:
                sys.stderr.write("\r\x1b[K" + self.text)
                sys.stderr.flush()

    def write_above(self, line: str) -> None:
        with self.lock:
            stream = sys.stderr
            if self.text:
                stream.write("\r\x1b[K")
            stream.write(line + "\n")
            if self.text:
                stream.write(self.text)
            stream.flush()


_status = _Status()
_live = False


def show_status(text: str | None) -> None:
    """Draw ``text`` as the live status line (None or "" clears it).

    While it shows, log lines are written above it and the periodic progress records
    (:data:`PROGRESS_LOGGER`) are dropped: the line says the same, live.
    """
    _status.show(text)


def live_progress() -> bool:
    """Whether :func:`configure` chose a live progress line: console format, not quiet,
    stderr a terminal. Otherwise progress is periodic log lines (CI, nohup, cron)."""
    return _live


class _StderrHandler(logging.Handler):
    """Formatted records on the current ``sys.stderr``, above the live status line.

    ``sys.stderr`` is looked up for each record, so a captured stderr (click's CliRunner,
    pytest) gets the lines of the command that runs while it is in place.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        if record.name == PROGRESS_LOGGER and _status.text:
            return False
        return super().filter(record)

    def emit(self, record: logging.LogRecord) -> None:
        try:
            _status.write_above(self.format(record))
        except Exception:
            self.handleError(record)


def _printable_values(
    _logger: object, _name: str, event: structlog.typing.EventDict
) -> structlog.typing.EventDict:
    """Text values with terminal control characters escaped: a console line carries index
    names and keys, which anyone who can write to Redis chooses (JSON escapes them itself)."""
    return {k: printable(v) if isinstance(v, str | bytes) else v for k, v in event.items()}


def configure(fmt: LogFormat = "console", verbosity: int = 0) -> None:
    """Route every log record to stderr as ``fmt``; safe to call again (it replaces itself).

    ``verbosity``: -1 (``-q``) errors only, no progress (cron mails only a failure); 0
    ftctl's info (runs, steps, decisions, periodic progress) and every library's warnings;
    1 (``-v``) ftctl's debug too (every batch); 2 (``-vv``) every library's debug.
    """
    global _live
    level = logging.ERROR if verbosity < 0 else logging.DEBUG if verbosity > 0 else logging.INFO
    _live = fmt == "console" and verbosity >= 0 and sys.stderr.isatty()
    rendering: list[structlog.typing.Processor]
    if fmt == "json":
        rendering = [structlog.processors.format_exc_info, structlog.processors.JSONRenderer()]
    else:
        rendering = [_printable_values, structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())]
    handler = _StderrHandler()
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=_PRE_CHAIN,
            processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, *rendering],
        )
    )
    root = logging.getLogger()
    for old in [h for h in root.handlers if isinstance(h, _StderrHandler)]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(
        logging.ERROR if verbosity < 0 else logging.DEBUG if verbosity > 1 else logging.WARNING
    )
    logging.getLogger("ftctl").setLevel(level)
    # Code that asks structlog itself for a logger goes the same way.
    structlog.configure(
        processors=PROCESSORS,
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=False,
    )


__all__ = [
    "PROGRESS_LOGGER",
    "LogFormat",
    "configure",
    "get_logger",
    "live_progress",
    "show_status",
]

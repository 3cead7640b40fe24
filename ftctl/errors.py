"""The one exception family of ftctl, and the exit codes the CLI maps them to.

Every error a user can cause is an :class:`FtctlError` carrying a one-line message, a hint
that names the fix, and an exit code. The CLI prints ``error: <message> (hint: <hint>)`` and
exits with that code; it never prints a traceback for these.

Bad input and refused preconditions (:class:`UsageError`, :class:`RefusedError` and their
subclasses) are also :class:`ValueError` instances, the type RedisVL's migrator raises for
them, so code written against ``redisvl.migration`` that catches ``ValueError`` still works.
"""

from __future__ import annotations

from ftctl.text import printable

EXIT_FAILED = 1
"""The migration ran and failed (validation, timeout, Redis error); a report is still written."""
EXIT_REFUSED = 2
"""Bad input or a refused precondition; nothing in Redis was changed."""
EXIT_INTERRUPTED = 130


class FtctlError(Exception):
    """Base of every error ftctl raises on purpose."""

    exit_code: int = EXIT_REFUSED

    def __init__(self, message: str, hint: str = "", *, exit_code: int | None = None) -> None:
        # Messages quote names from Redis and from the user: a control character or an
        # escape sequence in one must not reach a terminal, nor bytes that are not UTF-8 a
        # journal or a report (see ftctl.text.printable). Line breaks and tabs stay (whitespace,
        # folded into one line where the message is one).
        message, hint = printable(message, keep="\n\t"), printable(hint, keep="\n\t")
        super().__init__(message)
        self.message = message
        self.hint = hint
        if exit_code is not None:
            self.exit_code = exit_code

    def one_line(self) -> str:
        """The message and hint folded into the single line the CLI prints."""
        text = " ".join(self.message.split())
        if self.hint:
            text += f" (hint: {' '.join(self.hint.split())})"
        return text


class UsageError(FtctlError, ValueError):
    """Bad input: a file that does not parse, an unknown index, a flag combination."""


class RefusedError(FtctlError, ValueError):
    """A precondition failed before anything was changed."""


class ConnectionFailed(FtctlError):
    """The Redis server could not be reached."""


class RedisCommandError(FtctlError):
    """Redis answered a command with an error the caller did not expect."""

    exit_code = EXIT_FAILED

    def __init__(self, command: str, reply: str, hint: str = "") -> None:
        super().__init__(f"{command} failed: {reply}", hint)
        self.command = command
        self.reply = reply


class ServerUnavailable(FtctlError):
    """The embedded server cannot be started (missing extra, binary, or module)."""


class JournalCorruptError(FtctlError):
    """The journal has a damaged record before its tail; nothing runs until it is repaired."""


class BackupDirError(UsageError):
    """The backup directory cannot be used as it is: it cannot be created or written, a
    symbolic link or a foreign file inside it, no space left, a read-only file system,
    permission denied. Exit 2 while nothing has changed; a run that already changed Redis
    raises it with exit 1 and a hint to resume. A ``ValueError``, as RedisVL's "Could not
    create or access backup directory"."""

    fix: str = "fix the cause"
    """What removes the cause (the start of the hint), for callers that re-raise it."""


class JournalLockedError(FtctlError):
    """Another ftctl process holds the lock on the backup directory."""


class MigrationFailed(FtctlError):
    """The migration ran and did not reach its target (a check failed or Redis refused)."""

    exit_code = EXIT_FAILED


class Interrupted(FtctlError):
    """The run was stopped at a batch boundary (Ctrl+C); the journal says where to resume."""

    exit_code = EXIT_INTERRUPTED

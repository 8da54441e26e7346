"""The error taxonomy: user errors, transient failures, and everything else (bugs).

- **User errors** (`DistillError`): anything a user can cause (a bad file, field, value or
  model). One line naming the culprit; the CLI prints it and exits with code 2; a stage
  task never retries one (the same input fails the same way).
- **Transient failures** (`TransientError`, or any exception `is_transient` recognises,
  however a library wrapped it): the network, the hub's servers, a GPU out of memory while
  another process holds it. Stage tasks retry them with backoff; the CLI prints one line and
  exits with code 75 (EX_TEMPFAIL: run it again). They are raised `from` their cause, so the
  log keeps the library's error.
- **Bugs**: everything else. Never retried, never reworded: the traceback reaches the log (and
  the CLI exits with Python's 1).

Code wraps only the exception types it expects, where it knows what they mean.
"""

from __future__ import annotations

TRANSIENT_EXIT_CODE = 75  # sysexits.h EX_TEMPFAIL: a temporary failure; the user is invited to retry
# HTTP statuses that say "try again later": request timeout, too early, rate limited, and any server error.
RETRYABLE_STATUS = frozenset({408, 425, 429})


class DistillError(Exception):
    """Bad input: the message names the file, field or model and says what is wrong."""


class ConfigError(DistillError):
    """A run config that cannot be read or does not validate."""


class DataError(DistillError):
    """A dataset or predictions file that cannot be read or is malformed."""


class ModelError(DistillError):
    """A model that cannot be found, loaded or used for the requested task."""


class TransientError(Exception):
    """A failure that may pass if retried (network, hub servers, a busy GPU); the message names what failed."""


def _status(exc: BaseException) -> int | None:
    response = getattr(exc, "response", None)
    status = getattr(response, "status_code", None)
    return status if isinstance(status, int) else None


def _retryable_status(status: int) -> bool:
    return status in RETRYABLE_STATUS or status >= 500


def _kind(exc: BaseException) -> bool | None:
    """True: transient; False: known not to be; None: this link says nothing, look at its cause."""
    if isinstance(exc, TransientError):
        return True
    if isinstance(exc, DistillError):
        return False
    from huggingface_hub.errors import OfflineModeIsEnabled
    from huggingface_hub.utils import httpx as hub_httpx  # the HTTP client the hub library uses (httpx or httpx2)

    if isinstance(exc, OfflineModeIsEnabled):  # a ConnectionError, but a setting: retrying changes nothing
        return False
    status = _status(exc)
    if status is not None:  # an HTTP answer: the server says whether to come back
        return _retryable_status(status)
    if isinstance(exc, (hub_httpx.NetworkError, hub_httpx.TimeoutException, hub_httpx.RemoteProtocolError)):
        return True
    if isinstance(exc, (ConnectionError, TimeoutError)):
        return True
    import torch

    if isinstance(exc, torch.OutOfMemoryError):  # CUDA out of memory: another process may free it
        return True
    return None


def is_transient(exc: BaseException) -> bool:
    """Whether `exc`, or what it was raised from, is a failure worth retrying.

    Libraries re-wrap network errors (transformers raises `OSError("couldn't connect ...")` from
    one, `datasets` a `FileNotFoundError` `from None` in the context of a chain ending in a 503),
    so the chain is followed until a link says what it is: through `__cause__` (`raise ... from`),
    and through `__context__` where the raiser re-described the failure it was handling: `from None`,
    or an `OSError` (how libraries word "could not load", often raised bare inside their handler).
    Any other error raised while handling one (a `KeyError` in an `except` block) is a new one.
    """
    seen: set[int] = set()
    pending: list[BaseException] = [exc]
    while pending:
        current = pending.pop(0)
        if id(current) in seen:
            continue
        seen.add(id(current))
        kind = _kind(current)
        if kind is not None:
            return kind
        rewords = current.__suppress_context__ or isinstance(current, OSError)
        linked = [current.__cause__, current.__context__ if rewords else None]
        pending += [link for link in linked if link is not None]
    return False


def first_line(exc: BaseException) -> str:
    """An exception's message, first line only (its type's name when it has none): for one-line errors."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__

"""Redact secrets from anything readable that leaves the process: configs written to disk, the UI, logs.

Two rules, applied to nested dicts, lists and strings:

- A mapping key names a secret when its LAST word (split on `_`, `-`, `.`, spaces and
  camelCase) is `token`, `password`, `passwd`, `secret`, `credential(s)`, `apikey` or
  `authorization`, or is `key` qualified as one (`api_key`, `access_key`, `private_key`,
  `secret_key`, ...). Its value becomes "***"; `None` and booleans stay, since an absent
  value or a flag (`use_auth_token: true`) hides nothing. The last-word rule keeps harmless
  names readable: `cache_key`, `sort_key`, a bare `key` (here: a stage's cache key),
  `max_tokens`, `token_type_ids` and tokenizer special tokens (`mask_token`, `pad_token`,
  ...) are not secrets.
- Inside any string: credentials in URLs (`scheme://user:pass@host` -> `scheme://***@host`),
  secret-named assignments and query parameters (`?access_token=...`, `HF_TOKEN=...`) and
  Hugging Face access tokens (`hf_...`) become "***".

Redaction is for what people read. Content hashes (cache keys) keep hashing the
unredacted values, so two configs that differ only in a secret stay distinct where it
matters (a data URL's bytes, a model's files), and a redacted value never feeds a computation.
"""

from __future__ import annotations

import logging
import re
from typing import Any

MASK = "***"

_SECRET_LAST_WORDS = frozenset(
    {"token", "password", "passwd", "secret", "credential", "credentials", "apikey", "authorization"}
)
# `<qualifier>_key` is a secret; any other `<word>_key` (cache_key, sort_key, primary_key) is not.
_KEY_QUALIFIERS = frozenset(
    {"api", "access", "private", "secret", "auth", "client", "signing", "encryption", "master", "account", "sas"}
)
# Tokenizer special tokens are vocabulary entries ("[MASK]"), not credentials.
_SPECIAL_TOKEN_PREFIXES = frozenset({"mask", "pad", "cls", "sep", "unk", "bos", "eos"})

_WORD_SPLIT = re.compile(r"[^A-Za-z0-9]+|(?<=[a-z0-9])(?=[A-Z])")
_URL_USERINFO = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*://)(?P<userinfo>[^/?#@\s]+)@")
_ASSIGNMENT = re.compile(r"(?P<name>[A-Za-z][A-Za-z0-9_.-]*)=(?P<value>[^&\s#;,'\"]+)")
_HF_TOKEN = re.compile(r"\bhf_[A-Za-z0-9]{20,}\b")


def is_secret_key(name: str) -> bool:
    """Whether a mapping key (or query parameter) names a secret, by its last word."""
    words = [word.lower() for word in _WORD_SPLIT.split(str(name)) if word]
    if not words:
        return False
    last, previous = words[-1], words[-2] if len(words) > 1 else None
    if last == "token":
        return previous not in _SPECIAL_TOKEN_PREFIXES
    if last in _SECRET_LAST_WORDS:
        return True
    return last == "key" and previous in _KEY_QUALIFIERS


def redact_text(text: str) -> str:
    """`text` with URL credentials, secret-named assignments and Hugging Face tokens replaced by "***"."""
    if not text:
        return text
    text = _URL_USERINFO.sub(lambda m: f"{m['scheme']}{MASK}@", text)
    text = _ASSIGNMENT.sub(lambda m: f"{m['name']}={MASK}" if is_secret_key(m["name"]) else m[0], text)
    return _HF_TOKEN.sub(MASK, text)


def redact(value: Any) -> Any:
    """A copy of `value` (dicts, lists, tuples, strings, scalars) with secrets replaced by "***"."""
    if isinstance(value, dict):
        return {key: _redact_item(key, item) for key, item in value.items()}
    if isinstance(value, list):
        return [redact(item) for item in value]
    if isinstance(value, tuple):
        return tuple(redact(item) for item in value)
    if isinstance(value, str):
        return redact_text(value)
    return value


def _redact_item(key: Any, value: Any) -> Any:
    if isinstance(key, str) and is_secret_key(key) and value is not None and not isinstance(value, bool):
        return MASK if value != "" else value
    return redact(value)


class RedactingFilter(logging.Filter):
    """Rewrites each record's message with `redact_text` (the record is shared by every handler after it)."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a broken format call: leave it to the handler's own error reporting
            return True
        redacted = redact_text(message)
        if redacted != message:
            record.msg, record.args = redacted, None
        return True


_FILTER = RedactingFilter()

# Where this project's messages are logged: its own logger and Prefect's run loggers (get_run_logger).
LOGGERS = ("distill", "prefect.flow_runs", "prefect.task_runs")


def install_log_redaction(*handlers: logging.Handler) -> None:
    """Redact the project's loggers (and `handlers`, which see records from any library); idempotent."""
    for target in [*(logging.getLogger(name) for name in LOGGERS), *handlers]:
        if _FILTER not in target.filters:
            target.addFilter(_FILTER)

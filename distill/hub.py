"""Hugging Face hub access that fails fast and explains itself when the hub is out of reach.

transformers and datasets retry an unreachable hub for ~45 s before giving up with a
generic message. We first look in the local cache, then probe the endpoint once (2 s),
so an offline user learns at once that the id needs a network or a local path instead.
"""

from __future__ import annotations

import functools
import os
import socket
from urllib.parse import urlparse


def hub_offline_forced() -> bool:
    """True when the user asked for offline mode (HF_HUB_OFFLINE / TRANSFORMERS_OFFLINE / HF_DATASETS_OFFLINE)."""
    flags = ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_DATASETS_OFFLINE")
    return any(os.environ.get(flag, "").lower() in ("1", "true", "yes", "on") for flag in flags)


@functools.lru_cache(maxsize=1)
def hub_reachable(timeout: float = 2.0) -> bool:
    """One TCP connect to the hub endpoint; cached for the process."""
    if hub_offline_forced():
        return False
    endpoint = urlparse(os.environ.get("HF_ENDPOINT", "https://huggingface.co"))
    port = endpoint.port or (443 if endpoint.scheme == "https" else 80)
    try:
        with socket.create_connection((endpoint.hostname or "huggingface.co", port), timeout=timeout):
            return True
    except OSError:
        return False


def offline_hint(kind: str, ref: str) -> str:
    if hub_offline_forced():
        return (
            f"{kind} '{ref}' is not a local path nor in the Hugging Face cache, and offline mode is set; "
            "pass a local path"
        )
    return (
        f"{kind} '{ref}' is not a local path and the Hugging Face hub is unreachable; pass a local path instead "
        "(or set HF_HUB_OFFLINE=1 to use a copy already in the Hugging Face cache)"
    )

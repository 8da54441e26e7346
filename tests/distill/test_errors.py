"""The error taxonomy on the exceptions the libraries really raise, in the chains they really build."""

from __future__ import annotations

import pytest
import torch
from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError, OfflineModeIsEnabled
from huggingface_hub.utils import httpx as hub_httpx

from distill.errors import DataError, ModelError, TransientError, first_line, is_transient


def http_error(status: int) -> HfHubHTTPError:
    request = hub_httpx.Request("GET", "https://huggingface.co/api/models/x")
    return HfHubHTTPError(f"{status} error", response=hub_httpx.Response(status, request=request))


def raised(outer: BaseException, cause: BaseException | None, *, suppress: bool = False) -> BaseException:
    """`outer` as Python leaves it when raised inside `except cause` (`from None` when `suppress`)."""
    try:
        try:
            raise cause  # type: ignore[misc]
        except BaseException:
            if suppress:
                raise outer from None
            raise outer from cause
    except BaseException as caught:
        return caught


@pytest.mark.parametrize(
    "error",
    [
        ConnectionResetError(104, "Connection reset by peer"),
        TimeoutError("timed out"),
        hub_httpx.ConnectError("connection refused"),
        hub_httpx.ReadTimeout("read timed out"),
        http_error(503),
        http_error(429),
        torch.OutOfMemoryError("CUDA out of memory"),
        TransientError("hub down"),
    ],
    ids=lambda e: type(e).__name__,
)
def test_network_hub_and_device_failures_are_transient(error: BaseException) -> None:
    assert is_transient(error)


@pytest.mark.parametrize(
    "error",
    [
        ValueError("no training features"),
        http_error(404),
        http_error(401),
        OfflineModeIsEnabled("HF_HUB_OFFLINE is set"),
        DataError("train.json: file not found"),
        MemoryError(),
    ],
    ids=lambda e: type(e).__name__,
)
def test_bugs_user_errors_and_settings_are_not(error: BaseException) -> None:
    assert not is_transient(error)


def test_the_chain_is_followed_through_library_wrappers() -> None:
    # transformers: OSError("We couldn't connect ...") raised from the client's error.
    assert is_transient(raised(OSError("We couldn't connect to huggingface.co"), hub_httpx.ConnectError("refused")))
    # datasets 5: FileNotFoundError from None, raised while handling the cache miss, itself raised while
    # handling a LocalEntryNotFoundError from a 503 (datasets/load.py's nested handlers).
    local = raised(LocalEntryNotFoundError("not cached"), http_error(503))
    cache_miss = raised(FileNotFoundError("not in the cache"), local)
    cache_miss.__cause__, cache_miss.__suppress_context__ = None, False  # raised bare inside the handler
    assert is_transient(raised(FileNotFoundError("Couldn't find dataset"), cache_miss, suppress=True))
    # transformers 5: a bare OSError("Can't load ...") inside the handler of the client's timeout.
    wrapped = raised(OSError("Can't load tokenizer"), hub_httpx.ReadTimeout("read timed out"))
    wrapped.__cause__, wrapped.__suppress_context__ = None, False
    assert is_transient(wrapped)
    # The first link that knows wins: a user error or the offline setting is never retried, whatever caused it.
    assert not is_transient(raised(ModelError("model 'x': not found"), ConnectionResetError()))
    assert not is_transient(raised(OSError("cannot load"), OfflineModeIsEnabled("offline")))
    assert not is_transient(raised(RuntimeError("shape mismatch"), ValueError("bad")))


def test_a_cycle_in_the_chain_ends() -> None:
    first, second = OSError("a"), OSError("b")
    first.__context__, second.__context__ = second, first
    assert not is_transient(first)


def test_first_line() -> None:
    assert first_line(ValueError("one\ntwo")) == "one"
    assert first_line(KeyError()) == "KeyError"


def test_a_malformed_hub_id_is_a_user_error_naming_the_model() -> None:
    from distill.models.loading import materialize

    with pytest.raises(ModelError, match="model 'not a valid id!!': Repo id must use"):
        materialize("not a valid id!!")


def test_an_error_raised_while_handling_a_network_error_is_its_own() -> None:
    """Only a deliberate re-raise (`from`, `from None`) says what its context was; a bug in a handler is a bug."""
    try:
        try:
            raise ConnectionResetError(104, "reset")
        except ConnectionResetError:
            {}["missing"]  # noqa: B018 - the bug under test
    except KeyError as bug:
        assert bug.__context__ is not None and not is_transient(bug)


def test_an_uncached_hub_dataset_offline_is_a_user_error(monkeypatch: pytest.MonkeyPatch) -> None:
    """datasets says "offline" only in a ConnectionError's text: the setting is the user's, not the network's."""
    from distill.config import DataSource
    from distill.data.sources import load_hub_split

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    with pytest.raises(DataError, match="offline"):
        load_hub_split(DataSource(path="someone/not-cached-anywhere"), "train")

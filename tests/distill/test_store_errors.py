"""How failures of the object store are classified (distill.store.remote.store_errors) and how a conditional
commit decides when the create fails: with real botocore and s3fs exception objects, and against moto's S3 server
(tests/s3_server.py) where it can produce them."""

from __future__ import annotations

import errno
from pathlib import Path
from typing import Any

import pytest
from botocore import exceptions as boto
from s3fs.errors import translate_boto_error

from distill.errors import ConfigError, TransientError, is_transient
from distill.store.artifacts import remote_store
from distill.store.remote import ObjectStore, store_errors

URL = "s3://bucket/artifacts"
STAGE, KEY = "finetune_teacher", "finetune-teacher-fedcba9876543210fedcba98"


def answer(status: int, code: str, **error: str) -> boto.ClientError:
    """The ClientError botocore raises for an HTTP answer (after s3fs's own retries)."""
    body = {
        "Error": {"Code": code, "Message": f"{code} answer", **error},
        "ResponseMetadata": {"HTTPStatusCode": status},
    }
    return boto.ClientError(body, "PutObject")


def raised_through(error: BaseException) -> BaseException:
    """What `store_errors` makes of an error s3fs raised (an s3fs-translated ClientError, or a botocore error)."""
    with pytest.raises(BaseException) as caught, store_errors(URL, "committing a manifest"):
        raise translate_boto_error(error) if isinstance(error, boto.ClientError) else error
    return caught.value


@pytest.mark.parametrize(
    "error",
    [
        answer(503, "SlowDown"),
        answer(500, "InternalError"),
        answer(409, "ConditionalRequestConflict"),  # AWS: a conditional write racing another; s3fs: OSError(EIO)
        boto.EndpointConnectionError(endpoint_url="http://127.0.0.1:9"),
        boto.ReadTimeoutError(endpoint_url="http://127.0.0.1:9"),
        boto.ConnectionClosedError(endpoint_url="http://127.0.0.1:9"),
    ],
    ids=["503-slowdown", "500", "409-conflict", "no-connection", "read-timeout", "connection-closed"],
)
def test_outages_and_conflicts_are_transient(error: BaseException) -> None:
    raised = raised_through(error)
    assert isinstance(raised, TransientError) and is_transient(raised)


@pytest.mark.parametrize(
    "error",
    [
        boto.NoCredentialsError(),
        boto.PartialCredentialsError(provider="env", cred_var="AWS_SECRET_ACCESS_KEY"),
        boto.ParamValidationError(report="Invalid bucket name"),
        boto.NoRegionError(),
        answer(403, "AccessDenied"),
        answer(404, "NoSuchBucket"),
        answer(501, "NotImplemented"),  # a store without conditional writes: retrying would only retrain
    ],
    ids=["no-credentials", "partial-credentials", "bad-parameter", "no-region", "403", "no-bucket", "501"],
)
def test_settings_errors_name_artifact_root_and_are_not_retried(error: BaseException) -> None:
    raised = raised_through(error)
    assert isinstance(raised, ConfigError) and not is_transient(raised)
    assert str(raised).startswith(f"artifact_root: {URL}: ") and "\n" not in str(raised)


def test_a_missing_object_and_other_errors_pass_through_unchanged() -> None:
    missing = translate_boto_error(answer(404, "NoSuchKey"))
    assert raised_through(missing) is missing and isinstance(missing, FileNotFoundError)  # callers decide
    bug = KeyError("files")
    assert raised_through(bug) is bug


def test_missing_credentials_against_the_store_are_a_config_error(
    s3_root: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_PROFILE", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    for name in ("AWS_CONFIG_FILE", "AWS_SHARED_CREDENTIALS_FILE"):
        monkeypatch.setenv(name, str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    with pytest.raises(ConfigError, match=rf"^artifact_root: {s3_root}: reading a manifest: .*credentials") as caught:
        remote_store(s3_root).read_manifest(STAGE, KEY)
    assert not is_transient(caught.value)


class StoreAnswering:
    """The real s3fs filesystem on moto, with a conditional create that fails as `create` says: how another
    store words a 412, or a put that lands but whose answer is lost."""

    def __init__(self, fs: Any, create: str) -> None:
        self._fs, self._create = fs, create

    def __getattr__(self, name: str) -> Any:
        return getattr(self._fs, name)

    def pipe_file(self, path: str, data: bytes, **options: Any) -> Any:
        if options.get("mode") != "create":
            return self._fs.pipe_file(path, data, **options)
        if self._create == "einval":  # the object exists: a 412 read as an invalid request
            try:
                return self._fs.pipe_file(path, data, **options)
            except FileExistsError as exc:
                raise OSError(errno.EINVAL, "At least one of the pre-conditions you specified did not hold") from exc
        if self._create == "answer-lost":  # the put lands; its answer never arrives
            self._fs.pipe_file(path, data, **options)
            raise boto.ReadTimeoutError(endpoint_url="http://moto")
        raise translate_boto_error(answer(409, "ConditionalRequestConflict"))  # "conflict": nothing written


def answering(s3_root: str, create: str) -> ObjectStore:
    store = remote_store(s3_root)
    return ObjectStore(store.url, StoreAnswering(store.fs, create), store.prefix)


def test_a_loser_told_einval_adopts_the_winner(s3_root: str) -> None:
    assert remote_store(s3_root).commit_manifest(STAGE, KEY, b'{"winner": 1}') == b'{"winner": 1}'
    assert answering(s3_root, "einval").commit_manifest(STAGE, KEY, b'{"winner": 2}') == b'{"winner": 1}'


def test_a_commit_whose_answer_was_lost_finds_it_won(s3_root: str) -> None:
    assert answering(s3_root, "answer-lost").commit_manifest(STAGE, KEY, b'{"winner": 3}') == b'{"winner": 3}'
    assert remote_store(s3_root).read_manifest(STAGE, KEY) == b'{"winner": 3}'


def test_a_failed_create_with_no_manifest_is_transient(s3_root: str) -> None:
    with pytest.raises(TransientError, match="committing a manifest") as caught:
        answering(s3_root, "conflict").commit_manifest(STAGE, KEY, b'{"winner": 4}')
    assert is_transient(caught.value) and remote_store(s3_root).read_manifest(STAGE, KEY) is None

"""moto's S3 server, for the tests of `artifact_root: s3://...` (distill/store/remote.py).

An emulator of the S3 API over real HTTP, not a real object store: s3fs and botocore talk to it exactly as
to S3 (conditional puts included: `If-None-Match: *` answers 412), but its consistency, latency and error
behaviour are moto's. AWS S3, MinIO and Ceph RGW are not exercised here (no network in the test machines).

Registered in tests/conftest.py, like the MLflow server of tests/mlflow_server.py.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterator

import pytest

from distill_cli.server import free_port

# Credentials of no account: moto accepts any; the region makes bucket creation plain (no location constraint).
FAKE_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
}


@pytest.fixture(scope="session")
def s3_server() -> Iterator[str]:
    """moto's threaded S3 server on a free loopback port for the whole session; yields its endpoint URL."""
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # a line per request would bury a failing test's log
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()


@pytest.fixture()
def s3_root(s3_server: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """A fresh bucket on the emulator and an artifact root in it; the standard AWS settings point at the
    emulator for this test (and for processes it starts)."""
    monkeypatch.setenv("AWS_ENDPOINT_URL", s3_server)
    monkeypatch.delenv("AWS_ENDPOINT_URL_S3", raising=False)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    for name, value in FAKE_CREDENTIALS.items():
        monkeypatch.setenv(name, value)
    import boto3

    bucket = f"distill-{uuid.uuid4().hex[:12]}"
    boto3.client("s3", endpoint_url=s3_server).create_bucket(Bucket=bucket)
    return f"s3://{bucket}/artifacts"

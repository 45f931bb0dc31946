"""A real S3-compatible server for the S3 store's tests: moto in server mode on loopback.

Started once per session as a subprocess (``python -m moto.server``), stopped by its pid at the
end; each test gets a bucket of its own.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from grid.local import free_port

S3_CREDENTIALS = {"access_key_id": "testing", "secret_access_key": "testing", "region_name": "us-east-1"}


@pytest.fixture(scope="session")
def s3_server() -> Iterator[str]:
    """The endpoint URL of a moto server running for this test session."""
    pytest.importorskip("moto.server", reason="moto[server] is a dev dependency")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with tempfile.TemporaryFile() as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            _wait_until_up(url, process, log)
            yield url
        finally:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def _wait_until_up(url: str, process: subprocess.Popen, log: Any, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            log.seek(0)
            pytest.fail(f"moto server exited with {process.returncode}:\n{log.read().decode(errors='replace')}")
        try:
            httpx.get(f"{url}/moto-api/", timeout=1.0)
            return
        except httpx.TransportError:
            time.sleep(0.05)
    pytest.fail(f"moto server not answering on {url} after {timeout} s")


@pytest.fixture(scope="session")
def s3_admin(s3_server: str) -> Any:
    """A boto3 client of the session's server, for setting up what a test needs."""
    import boto3

    return boto3.client(
        "s3",
        endpoint_url=s3_server,
        region_name=S3_CREDENTIALS["region_name"],
        aws_access_key_id=S3_CREDENTIALS["access_key_id"],
        aws_secret_access_key=S3_CREDENTIALS["secret_access_key"],
    )


@pytest.fixture
def s3_options(s3_server: str, s3_admin: Any) -> dict[str, Any]:
    """OPTIONS of an S3 store on a fresh bucket of the session's server."""
    bucket = f"grid-test-{uuid.uuid4().hex[:12]}"
    s3_admin.create_bucket(Bucket=bucket)
    return {"bucket": bucket, "endpoint_url": s3_server, "addressing_style": "path", **S3_CREDENTIALS}

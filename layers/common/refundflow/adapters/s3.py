"""S3 access for reconciliation: settlement files are read as streams, converted files written from disk."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from typing import IO, Any, TextIO

from botocore.exceptions import BotoCoreError, ClientError

from refundflow.adapters.aws import client as aws_client
from refundflow.errors import NotFound, TransientError


class _BodyReader(io.RawIOBase):
    """botocore's streaming body as a raw stream: read in chunks, and its end read as end of file (the HTTP
    stream closes itself once drained, which io wrappers would take for a closed file)."""

    def __init__(self, body: Any) -> None:
        super().__init__()
        self._body = body
        self._done = False

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        if self._done:
            return 0
        data = self._body.read(len(buffer))
        if not data:
            self._done = True
            return 0
        buffer[: len(data)] = data
        return len(data)

    def close(self) -> None:
        self._body.close()
        super().close()


class S3Files:
    def __init__(self, s3: Any | None = None) -> None:
        self._s3 = s3

    @property
    def s3(self) -> Any:
        if self._s3 is None:
            self._s3 = aws_client("s3")
        return self._s3

    def open_binary(self, bucket: str, key: str) -> IO[bytes]:
        """The object's body as a stream (read in chunks as it is consumed, never whole).

        Raises:
            NotFound: no such object. TransientError: S3 could not be reached.
        """
        try:
            body = self.s3.get_object(Bucket=bucket, Key=key)["Body"]
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") in ("NoSuchKey", "404"):
                raise NotFound(f"s3://{bucket}/{key} does not exist") from error
            raise TransientError(f"S3 get_object failed: {error}", code="s3_unavailable") from error
        except BotoCoreError as error:
            raise TransientError(f"S3 get_object failed: {error}", code="s3_unavailable") from error
        return io.BufferedReader(_BodyReader(body), buffer_size=1 << 20)

    def open_text(self, bucket: str, key: str) -> TextIO:
        return io.TextIOWrapper(self.open_binary(bucket, key), encoding="utf-8-sig", newline="")

    def read_json_lines(self, bucket: str, key: str) -> Iterator[Any]:
        for line in self.open_text(bucket, key):
            if line.strip():
                yield json.loads(line)

    def read_json(self, bucket: str, key: str) -> Any:
        with self.open_binary(bucket, key) as body:
            return json.load(body)

    def upload_file(self, path: str, bucket: str, key: str) -> None:
        """Raises: TransientError: S3 did not take the file."""
        try:
            self.s3.upload_file(path, bucket, key)
        except (ClientError, BotoCoreError) as error:
            raise TransientError(f"S3 upload failed: {error}", code="s3_unavailable") from error

    def put_json(self, bucket: str, key: str, document: Any) -> None:
        try:
            self.s3.put_object(Bucket=bucket, Key=key, Body=json.dumps(document, sort_keys=True).encode())
        except (ClientError, BotoCoreError) as error:
            raise TransientError(f"S3 put_object failed: {error}", code="s3_unavailable") from error

    def put_file_if_absent(self, path: str, bucket: str, key: str) -> bool:
        """Upload the file as ``key`` unless an object has that key already (one ``PutObject`` with
        ``If-None-Match: *``, S3's conditional write:
        docs.aws.amazon.com/AmazonS3/latest/userguide/conditional-writes.html).
        Returns False when the key exists (``412 PreconditionFailed``); the body is streamed from disk.

        Raises:
            TransientError: S3 did not take the file, or a concurrent write of the key is in flight (``409
                ConditionalRequestConflict``: the caller tries again and then finds it).
        """
        try:
            with open(path, "rb") as body:
                self.s3.put_object(Bucket=bucket, Key=key, Body=body, IfNoneMatch="*")
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") in ("PreconditionFailed", "412"):
                return False
            raise TransientError(f"S3 put_object failed: {error}", code="s3_unavailable") from error
        except BotoCoreError as error:
            raise TransientError(f"S3 put_object failed: {error}", code="s3_unavailable") from error
        return True

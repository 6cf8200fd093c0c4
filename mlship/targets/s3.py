"""s3://bucket/prefix targets: AWS S3 and S3-compatible stores (MinIO, Ceph).

Shared documents (index, channels) are updated with conditional writes: the
new body is PUT with `If-Match: <ETag read>` (or `If-None-Match: *` when the
key did not exist), and a 412/409 answer (another writer got there first)
reads, changes and tries again (targets/conditional.py). The store must
support conditional writes (AWS S3 since 2024, MinIO; moto 5.2 for tests).
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any, BinaryIO, Iterator, Literal, Optional
from urllib.parse import urlparse

from pydantic import Field, field_validator

from mlship.errors import ServiceError, UsageError
from mlship.extras import require
from mlship.targets.base import Progress
from mlship.targets.conditional import ConditionalTarget, Conflict, listing
from mlship.targets.hashing import BlockMemo

PART_SIZE = 16 * 1024 * 1024
CONCURRENCY = 10  # parts at once, as awscli
ABORT_PATIENCE_S = 30.0
# Another writer changed (412) or is changing (409) the key, or removed it since it was read.
CONFLICTS = ("PreconditionFailed", "412", "ConditionalRequestConflict", "409", "NoSuchKey", "404")


class S3Target(ConditionalTarget):
    """An S3 bucket or an S3-compatible on-prem store (MinIO, Ceph)."""

    name = "s3"

    class Settings(ConditionalTarget.Settings):
        url: str = Field(..., description="s3://bucket/prefix")
        endpoint_url: str | None = Field(None, description="For S3-compatible stores; AWS when empty.")
        region: str | None = Field(None, description="Bucket region; boto3's chain decides when empty.")
        profile: str | None = Field(None, description="Named profile from the AWS config files.")
        sse: Literal["AES256", "aws:kms"] | None = Field(None, description="Server-side encryption.")
        sse_kms_key_id: str | None = Field(None, description="KMS key for sse: aws:kms.")

        @field_validator("url")
        @classmethod
        def _s3_url(cls, value: str) -> str:
            if not value.startswith("s3://") or len(value) <= len("s3://"):
                raise ValueError("must look like s3://bucket/prefix")
            return value

    def __init__(self, url: str, *, endpoint_url: str | None = None, region: str | None = None,
                 profile: str | None = None, sse: str | None = None, sse_kms_key_id: str | None = None,
                 **_: Any) -> None:
        super().__init__(url)
        parsed = urlparse(url)
        self.bucket, self.prefix = parsed.netloc, parsed.path.strip("/")
        # botocore's session as boto3's would be (boto3 itself, its resources and the s3transfer
        # it imports cost a push ~25 ms of start-up it does not use): the standard credential
        # chain (environment, profile, SSO, instance role), the profile, the region.
        botocore_session = require("botocore.session")
        from botocore.config import Config
        from botocore.exceptions import ProfileNotFound

        try:
            session = botocore_session.Session(profile=profile)
            if region is not None:
                session.set_config_variable("region", region)
            _share_loader(session)
            # Few retries per request: a store that is gone should fail the push quickly, then
            # cleanup (_abort_uploads) is patient.
            self.client = session.create_client("s3", endpoint_url=endpoint_url,
                                                config=Config(retries={"max_attempts": 3, "mode": "standard"},
                                                              connect_timeout=5, read_timeout=60))
        except ProfileNotFound as exc:  # `profile:`, or AWS_PROFILE, names none in the AWS config files
            raise UsageError(f"{url}: {exc}", hint="Name a profile from ~/.aws/config (or AWS_CONFIG_FILE), "
                             "or leave `profile:` and AWS_PROFILE unset") from None
        _parts_as_bytes(self.client)
        # botocore signs a part's sha256 only over plain http (over https the CRC32 covers it)
        self.signs_payload = urlparse(self.client.meta.endpoint_url).scheme == "http"
        if self.signs_payload:
            _known_payload_signing(self.client)
        self.extra: dict[str, str] = {}
        if sse:
            self.extra["ServerSideEncryption"] = sse
        if sse_kms_key_id:
            self.extra["SSEKMSKeyId"] = sse_kms_key_id

    def _key(self, key: str) -> str:
        self.check_key(key)
        return f"{self.prefix}/{key}" if self.prefix else key

    def upload(self, key: str, path: Path, progress: Progress) -> str:
        # The file is read once, in parts: each part's bytes are hashed into the file's sha256
        # and sent as they are (hashing.py's SharedRead, with one reader).
        from mlship.model.load import remember_sha256
        from mlship.targets.hashing import SharedRead

        read = SharedRead(path, 1, block=PART_SIZE)
        reader = read.reader(0)
        try:
            self._send(key, reader, read.size, progress, CONCURRENCY)
        finally:
            reader.close()
        digest = read.hexdigest()
        if digest is None:  # _send reads every part before it completes the upload
            raise ServiceError(f"{self.url}: upload of {key} stopped after {reader.position} of {read.size} bytes")
        return remember_sha256(path, digest)

    def upload_stream(self, key: str, source: BinaryIO, size: int, progress: Progress, *, sharing: int = 1) -> None:
        # Beside other targets, the 10 parts in flight are shared (at least 2 each): as many as
        # one push keeps on the client's one link, and fewer requests at once for each store
        # (bench_push: moto used less CPU per 500 MB with 5).
        self._send(key, source, size, progress, max(2, CONCURRENCY // sharing))

    def _send(self, key: str, source: Any, size: int, progress: Progress, concurrency: int) -> None:
        """Upload what `source` reads (`size` bytes) to `key`, in parts from PART_SIZE up; no half
        upload is left behind."""
        s3_key = self._key(key)
        try:
            if size < PART_SIZE:
                data = _read_exactly(source, size)
                self.client.put_object(Bucket=self.bucket, Key=s3_key, Body=data, **self.extra)
                progress(len(data))
            else:
                self._multipart(s3_key, source, size, progress, concurrency)
            head = self.client.head_object(Bucket=self.bucket, Key=s3_key)
        except Exception as exc:
            self._abort_uploads(s3_key)
            raise ServiceError(f"{self.url}: upload of {key} failed: {_reason(exc)}") from None
        if head.get("ContentLength") != size:
            raise ServiceError(f"{self.url}: {key} has {head.get('ContentLength')} bytes after upload, "
                               f"expected {size}")

    def _multipart(self, s3_key: str, source: Any, size: int, progress: Progress, concurrency: int) -> None:
        """A multipart upload, `concurrency` parts in flight. Each part goes to botocore as the
        bytes object read (a shared read hands every target the same one): botocore hashes it
        for SigV4 and its CRC32 in one pass each and sends it in one write, where a file object
        would be read, copied and sent in 16 KB pieces, with a callback each (s3transfer)."""
        from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait

        upload_id = self.client.create_multipart_upload(Bucket=self.bucket, Key=s3_key, ChecksumAlgorithm="CRC32",
                                                        **self.extra)["UploadId"]
        parts: list[dict[str, Any]] = []
        pending: set[Future[dict[str, Any]]] = set()
        pool = ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="s3-part")
        try:
            for number, offset in enumerate(range(0, size, PART_SIZE), start=1):
                while len(pending) >= concurrency:  # at most `concurrency` parts in memory
                    done, pending = wait(pending, return_when=FIRST_COMPLETED)
                    parts += [f.result() for f in done]
                data = _read_exactly(source, min(PART_SIZE, size - offset))
                memo = source.memo(data) if hasattr(source, "memo") else None
                pending.add(pool.submit(self._part, s3_key, upload_id, number, data, memo, progress))
            parts += [f.result() for f in wait(pending).done]
        finally:
            pool.shutdown(wait=True, cancel_futures=True)
        parts.sort(key=lambda p: p["PartNumber"])
        self.client.complete_multipart_upload(Bucket=self.bucket, Key=s3_key, UploadId=upload_id,
                                              MultipartUpload={"Parts": parts})

    def _part(self, s3_key: str, upload_id: str, number: int, data: bytes, memo: BlockMemo | None,
              progress: Progress) -> dict[str, Any]:
        # A part's CRC32 and sha256 are the same for every target it goes to: taken once (memo).
        digests = part_digests if self.signs_payload else part_crc32
        crc32, sha256 = memo.get(data, digests) if memo else digests(data)
        if self.signs_payload and sha256 is None:  # another (https) target took the CRC32 alone
            sha256 = part_digests(data)[1]
        _KNOWN.part = (data, sha256) if self.signs_payload else None
        try:
            reply = self.client.upload_part(Bucket=self.bucket, Key=s3_key, UploadId=upload_id, PartNumber=number,
                                            Body=data, ChecksumAlgorithm="CRC32", ChecksumCRC32=crc32)
        finally:
            _KNOWN.part = None
        progress(len(data))
        part = {"ETag": reply["ETag"], "PartNumber": number}
        if "ChecksumCRC32" in reply:  # an upload created with a checksum lists each part's on completion
            part["ChecksumCRC32"] = reply["ChecksumCRC32"]
        return part

    def _abort_uploads(self, s3_key: str, patience_s: float = ABORT_PATIENCE_S) -> None:
        """Leave no half multipart upload behind (it would be billed and hidden): keep trying
        for a while when the store is briefly away."""
        deadline = time.monotonic() + patience_s
        while True:
            try:
                listing = self.client.list_multipart_uploads(Bucket=self.bucket, Prefix=s3_key)
                for upload in listing.get("Uploads", []):
                    if upload["Key"] == s3_key:
                        self.client.abort_multipart_upload(Bucket=self.bucket, Key=s3_key,
                                                           UploadId=upload["UploadId"])
                return
            except Exception:
                if time.monotonic() >= deadline:
                    return
                time.sleep(0.5)

    def download(self, key: str, dest: Path, progress: Progress) -> None:
        s3_key = self._key(key)  # a refused key is invalid input (exit 3), not a store failure
        try:
            from boto3.s3.transfer import S3Transfer  # what boto3's client.download_file runs

            with S3Transfer(self.client) as transfer:
                transfer.download_file(self.bucket, s3_key, str(dest), callback=progress)
        except Exception as exc:
            raise ServiceError(f"{self.url}: download of {key} failed: {_reason(exc)}") from None

    def stream(self, key: str) -> Iterator[bytes] | None:
        s3_key = self._key(key)
        try:
            body = self.client.get_object(Bucket=self.bucket, Key=s3_key)["Body"]
        except Exception as exc:
            if _code(exc) in ("NoSuchKey", "404"):
                return None
            raise ServiceError(f"{self.url}: cannot read {key}: {_reason(exc)}") from None
        return self._chunks(body, key)

    def _chunks(self, body: Any, key: str) -> Iterator[bytes]:
        """The object's bytes as they arrive; the connection is closed when the reader stops early."""
        try:
            yield from body.iter_chunks(256 << 10)
        except Exception as exc:
            raise ServiceError(f"{self.url}: cannot read {key}: {_reason(exc)}") from None
        finally:
            body.close()

    def list_keys(self, prefix: str) -> list[str]:
        pages = self.client.get_paginator("list_objects_v2")
        return listing(self, self.prefix, prefix, lambda base: (
            item["Key"] for page in pages.paginate(Bucket=self.bucket, Prefix=base) for item in page.get("Contents", [])))

    def get_versioned(self, key: str) -> tuple[Optional[bytes], Optional[str]]:
        """The bytes under `key` and their ETag, or (None, None)."""
        s3_key = self._key(key)
        try:
            reply = self.client.get_object(Bucket=self.bucket, Key=s3_key)
            return reply["Body"].read(), reply.get("ETag")
        except Exception as exc:
            if _code(exc) in ("NoSuchKey", "404"):
                return None, None
            raise ServiceError(f"{self.url}: cannot read {key}: {_reason(exc)}") from None

    def put_if(self, key: str, data: bytes, version: Optional[str]) -> str:
        s3_key, condition = self._key(key), {"IfMatch": version} if version else {"IfNoneMatch": "*"}
        try:
            return self.client.put_object(Bucket=self.bucket, Key=s3_key, Body=data,
                                          ContentType="application/json", **condition, **self.extra)["ETag"]
        except Exception as exc:
            code = _code(exc)
            if code in ("NotImplemented", "501"):
                raise ServiceError(f"{self.url}: the store does not support conditional writes (If-Match), "
                                   f"so {key} cannot be updated safely",
                                   hint="Use AWS S3 or a store with conditional writes (MinIO)") from None
            if code in CONFLICTS:
                raise Conflict(key) from None
            raise ServiceError(f"{self.url}: cannot write {key}: {_reason(exc)}") from None

    def delete_if(self, key: str, version: str) -> None:
        s3_key = self._key(key)
        try:
            self.client.delete_object(Bucket=self.bucket, Key=s3_key, IfMatch=version)
        except Exception as exc:
            if _code(exc) in ("PreconditionFailed", "412"):
                raise Conflict(key) from None
            if _code(exc) not in ("NoSuchKey", "404"):
                raise ServiceError(f"{self.url}: cannot remove {key}: {_reason(exc)}") from None

    def write(self, key: str, data: bytes) -> None:
        s3_key = self._key(key)
        try:  # a PUT replaces the object whole: readers see the old or the new pointer
            self.client.put_object(Bucket=self.bucket, Key=s3_key, Body=data,
                                   ContentType="application/json", **self.extra)
        except Exception as exc:
            raise ServiceError(f"{self.url}: cannot write {key}: {_reason(exc)}") from None


def part_digests(data: bytes) -> tuple[str, str]:
    """A part's CRC32 as S3 wants it (x-amz-checksum-crc32: base64 of the big-endian value)
    and its sha256 (hex) for SigV4. Taken only for plain-http stores: over https botocore
    sends parts unsigned, with their CRC32 (see `part_crc32`)."""
    import hashlib

    return part_crc32(data)[0], hashlib.sha256(data).hexdigest()


def part_crc32(data: bytes) -> tuple[str, None]:
    """A part's CRC32 alone, for stores reached over https."""
    import base64
    import zlib

    return base64.b64encode(zlib.crc32(data).to_bytes(4, "big")).decode(), None


_KNOWN = threading.local()  # (bytes, its sha256) of the part this thread is sending
KNOWN_PAYLOAD_SIGNER = "mlship-s3v4-known-payload"


def _known_payload_signing(client: Any) -> None:
    """UploadPart is signed with botocore's own S3 SigV4, except that the payload's sha256 is
    the one part_digests took once for every target, not hashed again per target. It is
    used only for the very bytes object it was taken from (`request.body is` it), only where
    botocore would hash the body (plain http; over https S3 parts go unsigned with their
    CRC32), and only when botocore would sign with s3v4: anything else signs as before."""
    import botocore.auth
    from botocore.handlers import set_operation_specific_signer

    if KNOWN_PAYLOAD_SIGNER not in botocore.auth.AUTH_TYPE_MAPS:
        class KnownPayloadAuth(botocore.auth.S3SigV4Auth):
            def payload(self, request: Any) -> str:
                known = getattr(_KNOWN, "part", None)
                streaming = getattr(self, "_is_streaming_checksum_payload", lambda r: False)(request)
                if known and request.body is known[0] and not streaming and self._should_sha256_sign_payload(request):
                    return known[1]
                return super().payload(request)

        botocore.auth.AUTH_TYPE_MAPS[KNOWN_PAYLOAD_SIGNER] = KnownPayloadAuth

    def choose(**kwargs: Any) -> str | None:  # runs before botocore's own choice (a more specific event)
        return KNOWN_PAYLOAD_SIGNER if set_operation_specific_signer(**kwargs) == "s3v4" else None

    client.meta.events.register("choose-signer.s3.UploadPart", choose)


def _parts_as_bytes(client: Any) -> None:
    """UploadPart bodies stay the bytes objects they are. botocore otherwise wraps them in a
    BytesIO, then reads that in 1 MB copies for SigV4's sha256 and again for the CRC32, and
    sends it in 128 KB writes, each taking the GIL back: with 10 parts in flight those
    hand-overs, not the hashing, set the pace (bench_push). A bytes body is hashed in one
    call each (without the GIL) and sent in one write; a retry sends the same bytes again."""
    from botocore.handlers import convert_body_to_file_like_object

    client.meta.events.unregister("before-parameter-build.s3.UploadPart", convert_body_to_file_like_object)


_LOADERS: dict[Any, Any] = {}  # botocore data path -> the loader every S3 target's session shares


def _share_loader(session: Any) -> None:
    """Sessions opened in this process share botocore's data loader, which caches the service
    and endpoint models it parsed: a push to several S3 targets parses them once, not once per
    target (each session still resolves its own credentials, profile and region)."""
    key = session.get_config_variable("data_path")
    if key in _LOADERS:
        session.register_component("data_loader", _LOADERS[key])
    else:
        _LOADERS[key] = session.get_component("data_loader")


def _read_exactly(source: Any, size: int) -> bytes:
    """`size` bytes from `source` (one read from a SharedReader: the shared bytes object itself)."""
    data = source.read(size)
    while len(data) < size and (more := source.read(size - len(data))):
        data += more
    if len(data) != size:
        raise OSError(f"the file ended after {len(data)} of {size} bytes of a part (it changed while it was pushed)")
    return data


def _code(exc: Exception) -> str | None:
    return getattr(exc, "response", {}).get("Error", {}).get("Code") if hasattr(exc, "response") else None


def _reason(exc: Exception) -> str:
    code = _code(exc)
    if code == "NoSuchBucket":
        return "the bucket does not exist"
    if code in ("InvalidAccessKeyId", "SignatureDoesNotMatch", "AccessDenied", "403"):
        return f"access refused ({code}): check the credentials"
    text = str(exc).strip().splitlines()
    return text[0][:300] if text else type(exc).__name__

"""A light S3-compatible store for the push benchmark: the ceiling a store can reach on this machine.

moto's S3 server spends 2.5-3.7 CPU seconds receiving 500 MB (an MD5 per part, then a
copy of every part into one buffer and of the object into a temporary file), so on 2
cores two of them measure moto, not the client. This store does as little as a store
can while really keeping the bytes, in memory as moto does:

- a request's body goes from the socket straight into 4 MB slabs (`recv_into` with
  MSG_WAITALL: one system call per slab): the kernel's copy is the only one;
- an object, or an uploaded part, is its list of slabs. CompleteMultipartUpload checks
  the listed parts and their ETags and makes the object of their slabs, in order: no
  byte is copied again. A deleted object's slabs go back to a pool that later uploads
  fill, so runs after the first touch no new memory (on this VM, first-touched memory
  costs ~2 CPU seconds per GB in page faults, which would bill the store for the host);
  `--reserve MB` fills the pool before the first request;
- GET sends the slabs (single `Range: bytes=A-B` supported).

It serves the S3 REST calls `mlship push`, `mlship pull` and `aws s3 cp` make, path-style:
ListBuckets, Create/Head/DeleteBucket, ListObjectsV2, ListMultipartUploads,
Put/Get/Head/DeleteObject (with If-Match / If-None-Match on PUT and If-Match on DELETE:
412 PreconditionFailed), Create/UploadPart/Complete/AbortMultipartUpload. It answers
`Expect: 100-continue`. Not done (and not needed here): signature checks (any
credentials pass), verifying x-amz-content-sha256 or x-amz-checksum-* against the body
(the benchmark reads every stored copy back and compares its sha256 with the artifact's,
outside the timed runs), aws-chunked or chunked bodies (501: botocore sends those only
over https), versioning, ACLs, persistence, and a GET racing a DELETE of the same
object (the slabs it sends may be refilled meanwhile). ETags: a small object's (PutObject) is its
MD5, as S3's; an uploaded part's is not (S3's is the part's MD5, 0.6 CPU seconds per
500 MB here): it is derived from the upload id, part number and size, so no byte is
hashed. Clients do not check part ETags; they echo them in CompleteMultipartUpload,
which this store checks.

    python tests/benchmarks/light_s3.py --port P [--reserve MB]   (listens on 127.0.0.1 only)
"""

from __future__ import annotations

import argparse
import hashlib
import socket
import threading
import time
import uuid
from dataclasses import dataclass, field
from email.utils import formatdate
from urllib.parse import parse_qsl, unquote, urlsplit
from xml.etree import ElementTree
from xml.sax.saxutils import escape

SLAB = 4 << 20
NS = "http://s3.amazonaws.com/doc/2006-03-01/"

Slabs = list[tuple[bytearray, int]]  # the bytes of an object or part: slabs and how much of each is used


@dataclass
class Obj:
    slabs: Slabs
    size: int
    etag: str
    modified: float = field(default_factory=time.time)


@dataclass
class Upload:
    key: str
    parts: dict[int, tuple[Slabs, int, str]] = field(default_factory=dict)  # number -> (slabs, size, etag)
    started: float = field(default_factory=time.time)


class S3Error(Exception):
    def __init__(self, status: int, code: str, message: str = "") -> None:
        super().__init__(code)
        self.status, self.code, self.message = status, code, message or code


class Store:
    """Buckets, objects and uploads; their bytes in slabs taken from (and given back to) a pool."""

    def __init__(self, reserve_mb: int = 0) -> None:
        self.lock = threading.Lock()
        self.buckets: dict[str, dict[str, Obj]] = {}
        self.uploads: dict[str, dict[str, Upload]] = {}  # bucket -> upload id -> upload
        self.pool = [bytearray(b"\1" * SLAB) for _ in range(reserve_mb * (1 << 20) // SLAB)]  # touched now

    def bucket(self, name: str) -> dict[str, Obj]:
        if name not in self.buckets:
            raise S3Error(404, "NoSuchBucket", name)
        return self.buckets[name]

    def upload(self, bucket: str, upload_id: str) -> Upload:
        self.bucket(bucket)
        found = self.uploads[bucket].get(upload_id)
        if found is None:
            raise S3Error(404, "NoSuchUpload", upload_id)
        return found

    def slab(self) -> bytearray:
        with self.lock:
            return self.pool.pop() if self.pool else bytearray(SLAB)

    def drop(self, slabs: Slabs) -> None:
        with self.lock:
            self.pool.extend(slab for slab, _ in slabs)


class Request:
    def __init__(self, method: str, target: str, headers: dict[str, str]) -> None:
        self.method, self.headers = method, headers
        url = urlsplit(target)
        self.query = dict(parse_qsl(url.query, keep_blank_values=True))
        path = unquote(url.path).lstrip("/")
        self.bucket, _, self.key = path.partition("/")
        self.length = int(headers.get("content-length", "0"))


def xml(tag: str, body: str) -> bytes:
    return f'<?xml version="1.0" encoding="UTF-8"?>\n<{tag} xmlns="{NS}">{body}</{tag}>'.encode()


def iso(t: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime(t))


class Connection:
    """One client connection: HTTP/1.1 requests, one after another (keep-alive)."""

    def __init__(self, store: Store, sock: socket.socket) -> None:
        self.store, self.sock = store, sock
        self.pending = b""  # bytes received past the request head

    def run(self) -> None:
        try:
            while self.one():
                pass
        except (ConnectionError, OSError):
            pass
        finally:
            self.sock.close()

    def head(self) -> bytes | None:
        """The next request's head (up to the blank line), or None when the client closed."""
        while (end := self.pending.find(b"\r\n\r\n")) < 0:
            if len(self.pending) > 65536:
                raise ConnectionError("request head too long")
            data = self.sock.recv(65536)
            if not data:
                if self.pending:
                    raise ConnectionError("connection closed inside a request head")
                return None
            self.pending += data
        head, self.pending = self.pending[:end], self.pending[end + 4:]
        return head

    def one(self) -> bool:
        head = self.head()
        if head is None:
            return False
        line, *fields = head.decode("latin-1").split("\r\n")
        method, target, _ = line.split(" ", 2)
        headers: dict[str, str] = {}
        for h in fields:
            name, _, value = h.partition(":")
            headers[name.strip().lower()] = value.strip()
        req = Request(method, target, headers)
        if "chunked" in headers.get("transfer-encoding", "") or "aws-chunked" in headers.get("content-encoding", ""):
            self.answer(*self.error(S3Error(501, "NotImplemented", "chunked bodies are not supported")), close=True)
            return False
        if headers.get("expect", "").lower() == "100-continue":
            self.sock.sendall(b"HTTP/1.1 100 Continue\r\n\r\n")
        try:
            status, extra, body, send = self.dispatch(req)
        except S3Error as exc:
            self.skip(req)
            status, extra, body = (exc.status, {}, b"") if method == "HEAD" else self.error(exc)
            send = None
        self.answer(status, extra, body, head_only=method == "HEAD" and send is None, send=send)
        return headers.get("connection", "").lower() != "close"

    def error(self, exc: S3Error) -> tuple[int, dict[str, str], bytes]:
        body = f"<Error><Code>{exc.code}</Code><Message>{escape(exc.message)}</Message></Error>"
        return exc.status, {"Content-Type": "application/xml"}, ('<?xml version="1.0" encoding="UTF-8"?>\n' + body).encode()

    def answer(self, status: int, extra: dict[str, str], body: bytes, *, head_only: bool = False,
               send: tuple[Slabs, int, int] | None = None, close: bool = False) -> None:
        length = send[2] if send else int(extra.pop("Content-Length", len(body)))
        lines = [f"HTTP/1.1 {status} {REASONS.get(status, 'Status')}", f"Date: {formatdate(usegmt=True)}",
                 "x-amz-request-id: light", f"Content-Length: {length}"]
        lines += [f"{k}: {v}" for k, v in extra.items()]
        if close:
            lines.append("Connection: close")
        self.sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + (b"" if head_only else body))
        if send:
            self.send_slabs(*send)

    def send_slabs(self, slabs: Slabs, start: int, count: int) -> None:
        for slab, used in slabs:
            if start >= used:
                start -= used
                continue
            n = min(count, used - start)
            self.sock.sendall(memoryview(slab)[start:start + n])
            start, count = 0, count - n
            if not count:
                return

    def chunks(self, req: Request):
        """The request's body as it arrives (for small bodies and skipped ones)."""
        left, req.length = req.length, 0
        if self.pending:
            first, self.pending = self.pending[:left], self.pending[left:]
            left -= len(first)
            yield first
        while left:
            data = self.sock.recv(min(left, 1 << 20))
            if not data:
                raise ConnectionError("body cut short")
            left -= len(data)
            yield data

    def skip(self, req: Request) -> None:
        """Read and drop a body the answer did not need (keeps the connection in step)."""
        for _ in self.chunks(req):
            pass

    def body(self, req: Request) -> bytes:
        return b"".join(self.chunks(req))

    def body_to_slabs(self, req: Request) -> tuple[Slabs, int]:
        """The request's body received into slabs from the pool (MSG_WAITALL: one system call
        per slab, however the sender paces its writes); the slabs and the size."""
        left, req.length, slabs = req.length, 0, []
        try:
            while left:
                slab = self.store.slab()
                view, used = memoryview(slab), 0
                slabs.append((slab, 0))
                if self.pending:
                    used = min(len(self.pending), left, SLAB)
                    view[:used], self.pending = self.pending[:used], self.pending[used:]
                while used < min(SLAB, left):
                    n = self.sock.recv_into(view[used:], min(SLAB, left) - used, socket.MSG_WAITALL)
                    if not n:
                        raise ConnectionError("body cut short")
                    used += n
                slabs[-1] = (slab, used)
                left -= used
        except BaseException:
            self.store.drop(slabs)
            raise
        return slabs, sum(used for _, used in slabs)

    # ------------------------------------------------------------------ the S3 calls

    def dispatch(self, req: Request):  # -> (status, headers, body, slabs to send)
        s, m, q = self.store, req.method, req.query
        if not req.bucket:
            if m == "GET":
                return self.list_buckets()
            raise S3Error(405, "MethodNotAllowed")
        if not req.key:
            return self.on_bucket(req)
        if m == "POST" and "uploads" in q:
            with s.lock:
                s.bucket(req.bucket)
                upload_id = uuid.uuid4().hex
                s.uploads[req.bucket][upload_id] = Upload(req.key)
            return 200, {"Content-Type": "application/xml"}, xml(
                "InitiateMultipartUploadResult", f"<Bucket>{escape(req.bucket)}</Bucket><Key>{escape(req.key)}</Key>"
                f"<UploadId>{upload_id}</UploadId>"), None
        if m == "PUT" and "uploadId" in q:
            return self.upload_part(req, int(q["partNumber"]))
        if m == "POST" and "uploadId" in q:
            return self.complete(req)
        if m == "DELETE" and "uploadId" in q:
            with s.lock:
                upload = s.upload(req.bucket, q["uploadId"])
                del s.uploads[req.bucket][q["uploadId"]]
            s.drop([slab for slabs, _, _ in upload.parts.values() for slab in slabs])
            return 204, {}, b"", None
        if m == "PUT":
            return self.put_object(req)
        if m in ("GET", "HEAD"):
            return self.get_object(req)
        if m == "DELETE":
            with s.lock:
                objects = s.bucket(req.bucket)
                obj = objects.get(req.key)
                if obj and req.headers.get("if-match", obj.etag).strip('"') != obj.etag.strip('"'):
                    raise S3Error(412, "PreconditionFailed", req.key)
                objects.pop(req.key, None)
            if obj:
                s.drop(obj.slabs)
            return 204, {}, b"", None
        raise S3Error(405, "MethodNotAllowed")

    def list_buckets(self):
        with self.store.lock:
            names = sorted(self.store.buckets)
        items = "".join(f"<Bucket><Name>{escape(n)}</Name><CreationDate>{iso(0)}</CreationDate></Bucket>" for n in names)
        return 200, {"Content-Type": "application/xml"}, xml(
            "ListAllMyBucketsResult", f"<Owner><ID>light</ID></Owner><Buckets>{items}</Buckets>"), None

    def on_bucket(self, req: Request):
        s, m, name = self.store, req.method, req.bucket
        with s.lock:
            if m == "PUT":
                self.skip(req)  # the CreateBucketConfiguration, if any
                s.buckets.setdefault(name, {})
                s.uploads.setdefault(name, {})
                return 200, {"Location": f"/{name}"}, b"", None
            objects = s.bucket(name)
            if m == "HEAD":
                return 200, {}, b"", None
            if m == "DELETE":
                if objects:
                    raise S3Error(409, "BucketNotEmpty", name)
                del s.buckets[name], s.uploads[name]
                return 204, {}, b"", None
            if m == "GET" and "uploads" in req.query:
                ups = "".join(f"<Upload><Key>{escape(u.key)}</Key><UploadId>{i}</UploadId>"
                              f"<Initiated>{iso(u.started)}</Initiated></Upload>"
                              for i, u in s.uploads[name].items()
                              if u.key.startswith(req.query.get("prefix", "")))
                return 200, {"Content-Type": "application/xml"}, xml(
                    "ListMultipartUploadsResult", f"<Bucket>{escape(name)}</Bucket>{ups}<IsTruncated>false</IsTruncated>"), None
            if m == "GET":
                return self.list_objects(req, objects)
        raise S3Error(405, "MethodNotAllowed")

    def list_objects(self, req: Request, objects: dict[str, Obj]):
        prefix, after = req.query.get("prefix", ""), req.query.get("start-after", "")
        token = req.query.get("continuation-token", "")
        limit = int(req.query.get("max-keys", "1000"))
        keys = sorted(k for k in objects if k.startswith(prefix) and k > max(after, token))
        page, more = keys[:limit], len(keys) > limit
        items = "".join(f"<Contents><Key>{escape(k)}</Key><LastModified>{iso(objects[k].modified)}</LastModified>"
                        f"<ETag>{escape(objects[k].etag)}</ETag><Size>{objects[k].size}</Size>"
                        f"<StorageClass>STANDARD</StorageClass></Contents>" for k in page)
        tail = f"<NextContinuationToken>{escape(page[-1])}</NextContinuationToken>" if more else ""
        return 200, {"Content-Type": "application/xml"}, xml(
            "ListBucketResult", f"<Name>{escape(req.bucket)}</Name><Prefix>{escape(prefix)}</Prefix>"
            f"<KeyCount>{len(page)}</KeyCount><MaxKeys>{limit}</MaxKeys>"
            f"<IsTruncated>{'true' if more else 'false'}</IsTruncated>{items}{tail}"), None

    def upload_part(self, req: Request, number: int):
        s = self.store
        with s.lock:
            s.upload(req.bucket, req.query["uploadId"])
        slabs, size = self.body_to_slabs(req)
        etag = '"' + hashlib.md5(f"{req.query['uploadId']}/{number}/{size}".encode()).hexdigest() + '"'
        with s.lock:
            upload = s.uploads[req.bucket].get(req.query["uploadId"])  # aborted meanwhile?
            old = upload.parts.get(number) if upload else None
            if upload:
                upload.parts[number] = (slabs, size, etag)
        s.drop(slabs if upload is None else old[0] if old else [])
        if upload is None:
            raise S3Error(404, "NoSuchUpload", req.query["uploadId"])
        return 200, {"ETag": etag}, b"", None

    def complete(self, req: Request):
        s = self.store
        listed = ElementTree.fromstring(self.body(req))
        wanted = [(int(p.findtext(f"{{{NS}}}PartNumber") or p.findtext("PartNumber")),
                   p.findtext(f"{{{NS}}}ETag") or p.findtext("ETag") or "") for p in listed]
        with s.lock:
            upload = s.upload(req.bucket, req.query["uploadId"])
            if not wanted or [n for n, _ in wanted] != sorted({n for n, _ in wanted}):
                raise S3Error(400, "InvalidPartOrder")
            for number, etag in wanted:
                part = upload.parts.get(number)
                if part is None or part[2].strip('"') != etag.strip('"'):
                    raise S3Error(400, "InvalidPart", str(number))
            parts = [upload.parts.pop(n) for n, _ in wanted]
            joined = b"".join(bytes.fromhex(etag.strip('"')) for _, _, etag in parts)
            etag = f'"{hashlib.md5(joined).hexdigest()}-{len(parts)}"'
            del s.uploads[req.bucket][req.query["uploadId"]]
            objects = s.bucket(req.bucket)
            old = objects.get(upload.key)
            objects[upload.key] = Obj([slab for slabs, _, _ in parts for slab in slabs], sum(n for _, n, _ in parts), etag)
        s.drop([slab for slabs, _, _ in upload.parts.values() for slab in slabs] + (old.slabs if old else []))
        return 200, {"Content-Type": "application/xml"}, xml(
            "CompleteMultipartUploadResult", f"<Bucket>{escape(req.bucket)}</Bucket><Key>{escape(upload.key)}</Key>"
            f"<ETag>{escape(etag)}</ETag>"), None

    def put_object(self, req: Request):
        s = self.store
        with s.lock:
            s.bucket(req.bucket)
        slabs, size = self.body_to_slabs(req)
        digest = hashlib.md5()  # a single PUT's ETag is its MD5, as S3's (clients send small ones here)
        for slab, used in slabs:
            digest.update(memoryview(slab)[:used])
        etag = f'"{digest.hexdigest()}"'
        with s.lock:
            objects = s.bucket(req.bucket)
            old = objects.get(req.key)
            match, none_match = req.headers.get("if-match"), req.headers.get("if-none-match")
            refused = (match is not None and (old is None or old.etag.strip('"') != match.strip('"'))) or \
                (none_match == "*" and old is not None)
            if not refused:
                objects[req.key] = Obj(slabs, size, etag)
        s.drop(slabs if refused else old.slabs if old else [])
        if refused:
            raise S3Error(412, "PreconditionFailed", req.key)
        return 200, {"ETag": etag}, b"", None

    def get_object(self, req: Request):
        with self.store.lock:
            obj = self.store.bucket(req.bucket).get(req.key)
        if obj is None:
            raise S3Error(404, "NoSuchKey", req.key)
        head = {"ETag": obj.etag, "Last-Modified": formatdate(obj.modified, usegmt=True),
                "Content-Type": "application/octet-stream", "Accept-Ranges": "bytes"}
        start, count, status = 0, obj.size, 200
        rng = req.headers.get("range", "")
        if rng.startswith("bytes="):
            first, _, last = rng[6:].partition("-")
            start = int(first) if first else max(obj.size - int(last), 0)
            end = min(int(last), obj.size - 1) if first and last else obj.size - 1
            if start > end:
                raise S3Error(416, "InvalidRange")
            count, status = end - start + 1, 206
            head["Content-Range"] = f"bytes {start}-{end}/{obj.size}"
        if req.method == "HEAD":
            return status, {**head, "Content-Length": str(count)}, b"", None
        return status, head, b"", (obj.slabs, start, count)


REASONS = {100: "Continue", 200: "OK", 204: "No Content", 206: "Partial Content", 400: "Bad Request",
           404: "Not Found", 405: "Method Not Allowed", 409: "Conflict", 412: "Precondition Failed",
           416: "Requested Range Not Satisfiable", 501: "Not Implemented"}


def serve(port: int, reserve_mb: int = 0) -> None:
    store = Store(reserve_mb)
    listener = socket.create_server(("127.0.0.1", port), backlog=128)
    while True:
        sock, _ = listener.accept()
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        threading.Thread(target=Connection(store, sock).run, daemon=True).start()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--reserve", type=int, default=0, metavar="MB", help="slabs to fill before the first request")
    args = parser.parse_args()
    serve(args.port, args.reserve)


if __name__ == "__main__":
    main()

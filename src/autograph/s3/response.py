"""What the bulk S3 client hands back: a response whose body the caller reads, listing
entries, object heads, and the "no such key" error."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from types import TracebackType

from autograph.errors import DependencyDown, NotFound
from autograph.s3.http11 import Link

META_PREFIX = "x-amz-meta-"


class ObjectMissing(NotFound):
    """The key (or bucket) does not exist (S3 404)."""


@dataclass(frozen=True, slots=True)
class ListedObject:
    """One entry of a bucket listing."""

    key: str
    size: int
    etag: str
    last_modified: str


@dataclass(frozen=True, slots=True)
class ObjectHead:
    """What a GET or HEAD says about an object."""

    size: int
    etag: str
    content_type: str
    metadata: dict[str, str]
    last_modified: str


class Response:
    """A response whose body is read by the caller; ``close()`` returns the link to the pool."""

    def __init__(self, release: Callable[[Link], None], link: Link, status: int,
                 headers: dict[str, str]) -> None:
        self._release = release
        self._link: Link | None = link
        self.status = status
        self.headers = headers

    def header(self, name: str, default: str = "") -> str:
        return self.headers.get(name.lower(), default)

    def head(self) -> ObjectHead:
        """The object's size, etag, content type, user metadata and modification time."""
        meta = {
            k[len(META_PREFIX) :]: v for k, v in self.headers.items() if k.startswith(META_PREFIX)
        }
        length = self.header("Content-Range").rpartition("/")[2] or self.header("Content-Length")
        return ObjectHead(
            int(length or 0),
            self.header("ETag").strip('"'),
            self.header("Content-Type"),
            meta,
            self.header("Last-Modified"),
        )

    def readinto(self, view: memoryview) -> int:
        """Body bytes into ``view``; 0 at the end (the link then goes back to the pool).

        Raises DependencyDown when the connection breaks.
        """
        if self._link is None:
            return 0
        try:
            got = self._link.readinto(view)
        except OSError as exc:
            self.close(broken=True)
            raise DependencyDown(f"S3 read failed: {exc}") from None
        if not got:
            self.close()
        return got

    def chunks(self, size: int = 1 << 20) -> Iterator[bytes | bytearray]:
        """The body, in chunks of at most ``size`` bytes; the link is released at the end."""
        while self._link is not None:
            try:
                data = self._link.read(size)
            except OSError as exc:
                self.close(broken=True)
                raise DependencyDown(f"S3 read failed: {exc}") from None
            if not data:
                self.close()
                return
            yield data

    def read(self) -> bytes:
        """The whole body (for small replies)."""
        return b"".join(self.chunks())

    def close(self, broken: bool = False) -> None:
        """Give the link back (or drop it: broken, or its body not read to the end)."""
        if self._link is None:
            return
        link, self._link = self._link, None
        if broken or not link.finished or not link.reusable:
            link.close()
        else:
            self._release(link)

    def __enter__(self) -> Response:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close(broken=kind is not None)

"""The brands' generations as every process reads them without asking the database.

A brand's ``generation`` column (hub.models.Brand) counts every change to the
brand, its keys (issue, revocation, allowlist, deletion) and its customers; it
is the source of truth. The *board* is a copy of it that a lookup reads instead
of the database: Redis when ``REDIS_URL`` is set (one GET, a network round trip
but no database one), otherwise a small memory-mapped file shared by the
processes of this host (a memory read). Caches (the credential cache in
hooks.inbound.common, the answer cache in hooks.inbound.lookup_cache) keep
entries tagged with the generation their data was read at, and use an entry
only while the board shows that same generation.

Why a revocation is immediate, not "soon": hub.services.brand_touch bumps the
column and writes the new value to the board *inside* the change's transaction,
before it commits (and a board it cannot write rolls the change back). So from
the moment a change is visible in the database, the board is already past every
entry cached before it: the next lookup in any process reads the database. The
board only ever grows (a compare-and-set to the larger value), so two changes
publishing in either order leave the later one. A change that rolls back after
publishing leaves the board ahead of the column: the brand's lookups read the
database (correct, slower) until its next change. A missing value (Redis
flushed or restarted, a new file) is filled from the database by the next
lookup; the change's commit publishes once more (on_commit) in case the value
went missing while it was in flight.

Without Redis every process that serves lookups or changes brands must run on
this host and share ``HUB_GENERATION_FILE``; a deployment spread over hosts sets
``REDIS_URL`` (or ``HUB_CREDENTIAL_CACHE = "off"``: the key check reads the
database on every call, as before).
"""

from __future__ import annotations

import fcntl
import hashlib
import logging
import mmap
import os
import struct
import tempfile
import threading
from typing import Protocol, cast

from django.conf import settings

logger = logging.getLogger(__name__)

# A deleted brand's value: larger than any generation, so no cached entry matches again.
DELETED = 2**62
_SLOT = struct.Struct("<q")


class Board(Protocol):
    kind: str

    def read(self, brand_id: int) -> int | None:
        """The brand's published generation; None when unknown (then nothing cached may be used)."""

    def publish(self, brand_id: int, generation: int) -> None:
        """Raise the brand's value to ``generation`` (never lowers it); raises when it cannot."""

    def reset(self) -> None:
        """Forget every value (tests)."""


class NoBoard:
    """``HUB_CREDENTIAL_CACHE = "off"``: nothing is known, every key check reads the database."""

    kind = "off"

    def read(self, brand_id: int) -> int | None:
        return None

    def publish(self, brand_id: int, generation: int) -> None:
        return None

    def reset(self) -> None:
        return None


# Raise the value to ARGV[1] unless it is already larger; atomic in Redis.
_SET_MAX = """
local current = tonumber(redis.call('GET', KEYS[1]) or '-1')
local wanted = tonumber(ARGV[1])
if wanted > current then redis.call('SET', KEYS[1], ARGV[1]) return wanted end
return current
"""


class RedisBoard:
    """Values in Redis under ``hookhub:gen:<brand id>``, without expiry."""

    kind = "redis"

    def __init__(self, url: str) -> None:
        import redis

        self.client = redis.Redis.from_url(url, socket_timeout=1.0, socket_connect_timeout=1.0)
        self.set_max = self.client.register_script(_SET_MAX)

    @staticmethod
    def key(brand_id: int) -> str:
        return f"hookhub:gen:{brand_id}"

    def read(self, brand_id: int) -> int | None:
        try:
            value = cast("bytes | None", self.client.get(self.key(brand_id)))
        except Exception:  # noqa: BLE001 - Redis away: nothing cached is trusted, the database answers
            logger.warning("Generation board: Redis read failed", exc_info=True)
            return None
        return None if value is None else int(value)

    def publish(self, brand_id: int, generation: int) -> None:
        self.set_max(keys=[self.key(brand_id)], args=[generation])

    def reset(self) -> None:
        for key in self.client.scan_iter(match="hookhub:gen:*", count=1000):
            self.client.delete(key)


class FileBoard:
    """One 8-byte slot per brand id in a memory-mapped file: slot = generation + 1
    (0: unknown). Reads are lock-free memory reads (an aligned 8-byte slot); a
    publish takes an exclusive lock on the file. The file's identity is checked
    on every read (one stat): a file removed and created again is mapped again."""

    kind = "file"

    def __init__(self, path: str) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._map: mmap.mmap | None = None
        self._identity: tuple[int, int] | None = None

    def _current(self, need: int) -> mmap.mmap | None:
        """The mapping of the file now at the path (mapped again when the file was
        replaced or has grown); None when there is no file."""
        try:
            stat = os.stat(self.path)
        except FileNotFoundError:
            return None
        mapped = self._map
        if mapped is None or (stat.st_dev, stat.st_ino) != self._identity or len(mapped) < min(need, stat.st_size):
            with self._lock:
                fd = os.open(self.path, os.O_RDWR)
                try:
                    size = os.fstat(fd).st_size
                    self._map = mapped = mmap.mmap(fd, size) if size else None
                    self._identity = (stat.st_dev, stat.st_ino)
                finally:
                    os.close(fd)
        return mapped

    def read(self, brand_id: int) -> int | None:
        offset = brand_id * _SLOT.size
        mapped = self._current(offset + _SLOT.size)
        if mapped is None or offset + _SLOT.size > len(mapped):
            return None
        value = _SLOT.unpack_from(mapped, offset)[0]
        return value - 1 if value > 0 else None

    def publish(self, brand_id: int, generation: int) -> None:
        offset = brand_id * _SLOT.size
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.lockf(fd, fcntl.LOCK_EX)
            if os.fstat(fd).st_size < offset + _SLOT.size:
                # Whole 4 KiB pages (512 brands each); the file is sparse.
                os.ftruncate(fd, -(-(offset + _SLOT.size) // 4096) * 4096)
            mapped = self._current(offset + _SLOT.size)
            assert mapped is not None and len(mapped) >= offset + _SLOT.size
            if _SLOT.unpack_from(mapped, offset)[0] < generation + 1:
                _SLOT.pack_into(mapped, offset, generation + 1)
        finally:
            os.close(fd)  # releases the lock

    def reset(self) -> None:
        try:
            os.remove(self.path)
        except FileNotFoundError:
            pass
        self._map = None
        self._identity = None


def default_file() -> str:
    """A file per database (name, host, port), so two databases on one host never share values."""
    db = settings.DATABASES["default"]
    identity = f"{db.get('ENGINE')}|{db.get('NAME')}|{db.get('HOST')}|{db.get('PORT')}"
    digest = hashlib.sha256(identity.encode()).hexdigest()[:16]
    return os.path.join(tempfile.gettempdir(), f"hookhub-generations-{digest}")


_board: Board | None = None
_board_lock = threading.Lock()


def board() -> Board:
    """This process's board, chosen by ``HUB_CREDENTIAL_CACHE`` ("redis", "file", "off";
    default: redis when REDIS_URL is set, else file)."""
    global _board
    if _board is None:
        with _board_lock:
            if _board is None:
                _board = _build()
    return _board


def _build() -> Board:
    redis_url = getattr(settings, "REDIS_URL", "")
    kind = getattr(settings, "HUB_CREDENTIAL_CACHE", "") or ("redis" if redis_url else "file")
    if kind == "redis":
        if not redis_url:
            raise RuntimeError('HUB_CREDENTIAL_CACHE = "redis" needs REDIS_URL.')
        return RedisBoard(redis_url)
    if kind == "file":
        return FileBoard(getattr(settings, "HUB_GENERATION_FILE", "") or default_file())
    if kind == "off":
        return NoBoard()
    raise RuntimeError(f'HUB_CREDENTIAL_CACHE must be "redis", "file" or "off", not {kind!r}.')


def board_replace(new: Board | None) -> Board | None:
    """Use another board in this process (tests; None: choose again from settings); returns the old one."""
    global _board
    old, _board = _board, new
    return old

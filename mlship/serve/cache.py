"""An LRU cache of predictions keyed by a hash of the inputs."""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from typing import Any

import numpy as np


def feeds_key(feeds: dict[str, np.ndarray]) -> str:
    """A digest of names, dtypes, shapes and bytes of every input."""
    digest = hashlib.blake2b(digest_size=20)
    for name in sorted(feeds):
        value = feeds[name]
        digest.update(f"{name}|{value.dtype.str}|{value.shape}|".encode())
        if value.dtype.kind == "O":
            digest.update("\x1f".join(map(str, value.ravel().tolist())).encode())
        else:
            digest.update(np.ascontiguousarray(value).tobytes())
    return digest.hexdigest()


class LRUCache:
    """At most `size` entries; the least recently used goes first."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._data: OrderedDict[str, Any] = OrderedDict()
        self.hits = 0
        self.misses = 0

    def get(self, key: str) -> Any | None:
        value = self._data.get(key)
        if value is None:
            self.misses += 1
            return None
        self._data.move_to_end(key)
        self.hits += 1
        return value

    def put(self, key: str, value: Any) -> None:
        self._data[key] = value
        self._data.move_to_end(key)
        while len(self._data) > self.size:
            self._data.popitem(last=False)

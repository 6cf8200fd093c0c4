"""Errors a request can cause: each becomes a 4xx JSON answer."""

from __future__ import annotations


class RequestError(Exception):
    """A bad request: `status` (4xx) and a message naming the problem."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message

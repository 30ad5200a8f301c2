"""Errors the service answers with a status code and a message naming the field at fault."""

from __future__ import annotations


class ServeError(Exception):
    """A request the service refuses: HTTP ``status``, a machine ``code``, the ``field``
    (JSON path such as ``decisions[3].features.age``) and a one-line message."""

    def __init__(self, status: int, code: str, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.field = field

    def body(self, request_id: str | None = None) -> dict[str, object]:
        text = f"{self.field}: {self.message}" if self.field else self.message
        return {"error": self.code, "message": text, "field": self.field, "request_id": request_id}


def item_field(batch: bool, index: int, name: str) -> str:
    """The JSON path of a request field: ``unit_id`` or ``decisions[3].unit_id``."""
    return f"decisions[{index}].{name}" if batch else name

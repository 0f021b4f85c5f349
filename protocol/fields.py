"""Field readers that turn an untrusted decoded dict into typed values.

Each read names the field in the error, so a client author sees exactly which
field of which message was refused. Unknown fields are ignored (forward
compatibility: newer clients may send fields an older server does not know).
"""

from __future__ import annotations

import math
from typing import Any

from protocol.errors import ErrorCode, ProtocolError
from protocol.limits import LIMITS, Limits


def _invalid(field: str, why: str) -> ProtocolError:
    return ProtocolError(ErrorCode.INVALID, f"{field}: {why}", {"field": field})


class Fields:
    """Typed access to one decoded object."""

    __slots__ = ("limits", "obj", "where")

    def __init__(self, obj: Any, where: str = "", limits: Limits = LIMITS) -> None:
        if not isinstance(obj, dict):
            raise _invalid(where or "message", "must be an object")
        self.obj: dict[str, Any] = obj
        self.where = where
        self.limits = limits

    def _name(self, key: str) -> str:
        return f"{self.where}.{key}" if self.where else key

    def _get(self, key: str, required: bool) -> Any:
        value = self.obj.get(key)
        if value is None and required:
            raise _invalid(self._name(key), "is required")
        return value

    def text(
        self,
        key: str,
        *,
        required: bool = True,
        max_chars: int | None = None,
        nonblank: bool = False,
    ) -> Any:
        """A string; required ones, and optional ones marked ``nonblank``, must not be blank."""
        value = self._get(key, required)
        if value is None:
            return None
        if not isinstance(value, str):
            raise _invalid(self._name(key), "must be a string")
        limit = max_chars if max_chars is not None else self.limits.max_short_chars
        if len(value) > limit:
            raise _invalid(self._name(key), f"longer than {limit} characters")
        if (required or nonblank) and not value.strip():
            raise _invalid(self._name(key), "must not be empty")
        return value

    def req_str(self, key: str, *, max_chars: int | None = None) -> str:
        value: str = self.text(key, required=True, max_chars=max_chars)
        return value

    def opt_str(
        self, key: str, *, max_chars: int | None = None, nonblank: bool = False
    ) -> str | None:
        value: str | None = self.text(key, required=False, max_chars=max_chars, nonblank=nonblank)
        return value

    def ident(self, key: str) -> str:
        return self.req_str(key, max_chars=self.limits.max_id_chars)

    def opt_ident(self, key: str) -> str | None:
        return self.opt_str(key, max_chars=self.limits.max_id_chars)

    def integer(self, key: str, *, required: bool = True, minimum: int = 0) -> Any:
        value = self._get(key, required)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int):
            raise _invalid(self._name(key), "must be an integer")
        if value < minimum or value > 2**53:
            raise _invalid(self._name(key), f"must be between {minimum} and 2^53")
        return value

    def req_int(self, key: str, *, minimum: int = 0) -> int:
        value: int = self.integer(key, required=True, minimum=minimum)
        return value

    def opt_int(self, key: str, *, minimum: int = 0) -> int | None:
        value: int | None = self.integer(key, required=False, minimum=minimum)
        return value

    def opt_float(self, key: str, low: float, high: float) -> float | None:
        value = self._get(key, False)
        if value is None:
            return None
        return self._float(key, value, low, high)

    def req_float(self, key: str, low: float, high: float) -> float:
        return self._float(key, self._get(key, True), low, high)

    def _float(self, key: str, value: Any, low: float, high: float) -> float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise _invalid(self._name(key), "must be a number")
        number = float(value)
        if not math.isfinite(number) or not low <= number <= high:
            raise _invalid(self._name(key), f"must be between {low} and {high}")
        return number

    def flag(self, key: str, default: bool = False) -> bool:
        value = self._get(key, False)
        if value is None:
            return default
        if not isinstance(value, bool):
            raise _invalid(self._name(key), "must be true or false")
        return value

    def choice(self, key: str, options: tuple[str, ...], *, required: bool = True) -> Any:
        value = self.text(key, required=required)
        if value is not None and value not in options:
            raise _invalid(self._name(key), f"must be one of {', '.join(options)}")
        return value

    def str_list(self, key: str, *, required: bool = False) -> tuple[str, ...] | None:
        value = self._get(key, required)
        if value is None:
            return None
        if not isinstance(value, list):
            raise _invalid(self._name(key), "must be a list of strings")
        if len(value) > self.limits.max_list_items:
            raise _invalid(self._name(key), f"more than {self.limits.max_list_items} items")
        for item in value:
            if not isinstance(item, str) or not item or len(item) > self.limits.max_id_chars:
                raise _invalid(self._name(key), "items must be non-empty short strings")
        return tuple(dict.fromkeys(value))

    def obj_list(self, key: str) -> list[Fields]:
        value = self._get(key, True)
        if not isinstance(value, list) or not value:
            raise _invalid(self._name(key), "must be a non-empty list")
        if len(value) > self.limits.max_list_items:
            raise _invalid(self._name(key), f"more than {self.limits.max_list_items} items")
        return [
            Fields(item, f"{self._name(key)}[{i}]", self.limits) for i, item in enumerate(value)
        ]

    def sub(self, key: str, *, required: bool = False) -> Fields | None:
        value = self._get(key, required)
        if value is None:
            return None
        return Fields(value, self._name(key), self.limits)

    def str_map(self, key: str) -> dict[str, str] | None:
        value = self._get(key, False)
        if value is None:
            return None
        if not isinstance(value, dict) or len(value) > self.limits.max_list_items:
            raise _invalid(self._name(key), "must be an object of short strings")
        for k, v in value.items():
            if not isinstance(v, str) or len(k) > self.limits.max_id_chars:
                raise _invalid(self._name(key), "must be an object of short strings")
            if len(v) > self.limits.max_id_chars:
                raise _invalid(self._name(key), "values must be short strings")
        return dict(value)

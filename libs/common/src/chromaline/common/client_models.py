"""The base of every request body a client sends: unknown fields and NUL characters are refused.

A field a client may not set (an internal blob reference, a role, an owner) cannot be smuggled
in by naming it: the body must match the documented schema exactly, or it answers 422. NUL
never reaches PostgreSQL, which cannot store it in text and would fail the request with a 500.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, field_validator


class ClientModel(BaseModel):
    model_config = ConfigDict(extra="forbid")

    @field_validator("*", mode="after")
    @classmethod
    def _refuse_nul(cls, value: Any) -> Any:
        if isinstance(value, str) and "\x00" in value:
            raise ValueError("NUL characters are not allowed")
        return value

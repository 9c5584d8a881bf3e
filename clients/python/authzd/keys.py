"""The module-permission key grammar, as authzd parses it (client/key.go keeps the same copy)."""

from __future__ import annotations

import re

__all__ = ["validate_key"]

_KEY = re.compile(r"[a-z0-9_]+(:[a-z0-9_]+)+")

# SpiceDB's limit on the relation authzd derives from a key ("grant_" + the key with ':' as "__").
_MAX_RELATION_LEN = 64


def validate_key(key: str) -> None:
    """Raises ValueError unless ``key`` is a well-formed module-permission key, such as
    ``"scaibunker:create:session"``. It does not say whether authzd knows the key."""
    if not isinstance(key, str) or not _KEY.fullmatch(key) or not key.isascii():
        raise ValueError(f"permission key {key!r} must look like module:segment(:segment)* "
                         "with lowercase [a-z0-9_] segments")
    for seg in key.split(":"):
        if "__" in seg or seg.startswith("_") or seg.endswith("_"):
            raise ValueError(f"permission key {key!r}: segment {seg!r} may not start or end with '_' or contain '__'")
    if not "a" <= key[0] <= "z":
        raise ValueError(f"permission key {key!r} must start with a letter")
    n = len("grant_" + key.replace(":", "__"))
    if n > _MAX_RELATION_LEN:
        raise ValueError(f"permission key {key!r} is too long: its SpiceDB relation would be {n} characters "
                         f"(max {_MAX_RELATION_LEN})")

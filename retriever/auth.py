"""Who may do what: read, write and admin API keys, checked on every route that needs them.

- `read`: `POST /v1/search` and the GET routes (documents, models, feedback stats, eval
  reports, retune status). Open unless read keys are configured (apps stay cheap).
- `write`: `POST /v1/documents`, `DELETE /v1/documents/...`, `POST /v1/feedback`,
  `GET /v1/feedback/export`.
- `admin`: `/v1/admin/*`. Off (403) unless an admin key is configured.

A key of a higher role does everything a lower one does. With no key configured at all, writes
are accepted only when the server is bound to a loopback address (or `retriever.insecure` is
set): nobody else can reach it then. Keys are compared as SHA-256 digests with
`hmac.compare_digest`, every configured key on every request (no early exit), so neither a
key's length nor which key matched shows in the timing; keys are never logged.
"""

from __future__ import annotations

import enum
import hashlib
import hmac
import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pydantic import SecretStr

    from ragctl.core.settings import RetrieverSettings


class Role(enum.IntEnum):
    """What a key may do; each role includes the ones below it."""

    READ = 1
    WRITE = 2
    ADMIN = 3

    @property
    def label(self) -> str:
        return self.name.lower()


def is_loopback_host(host: str) -> bool:
    """True for `localhost` and loopback addresses (127.0.0.0/8, ::1): only this machine."""
    if host.strip().lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip().strip("[]")).is_loopback
    except ValueError:
        return False  # another host name: it may resolve to any address


def _digest(key: str) -> bytes:
    return hashlib.sha256(key.encode("utf-8", "surrogateescape")).digest()


@dataclass(frozen=True)
class AccessPolicy:
    """The keys of each role (as digests) and what anonymous clients may do."""

    keys: tuple[tuple[bytes, Role], ...]
    counts: dict[Role, int]
    host: str
    insecure: bool

    @classmethod
    def from_settings(cls, retriever: RetrieverSettings) -> AccessPolicy:
        """The policy `retriever.*_api_key`, `retriever.host` and `retriever.insecure` give."""
        by_role: list[tuple[Role, Sequence[SecretStr]]] = [
            (Role.READ, retriever.read_api_key),
            (Role.WRITE, retriever.write_api_key),
            (Role.ADMIN, retriever.admin_api_key),
        ]
        keys = tuple(
            (_digest(key.get_secret_value()), role) for role, secrets in by_role for key in secrets
        )
        counts = {role: len(secrets) for role, secrets in by_role}
        return cls(keys=keys, counts=counts, host=retriever.host, insecure=retriever.insecure)

    @property
    def any_keys(self) -> bool:
        return bool(self.keys)

    @property
    def anonymous_writes(self) -> bool:
        """No key configured, and only this machine can connect (or `insecure` says so)."""
        return not self.keys and (is_loopback_host(self.host) or self.insecure)

    def configured(self, role: Role) -> bool:
        return self.counts.get(role, 0) > 0

    def role_of(self, token: str | None) -> Role | None:
        """The highest role of a key equal to `token`, compared in constant time; None if none."""
        if not token:
            return None
        given = _digest(token)
        found = 0
        for digest, role in self.keys:  # all of them, always: no early exit
            if hmac.compare_digest(given, digest):
                found = max(found, int(role))
        return Role(found) if found else None

    def describe(self) -> str:
        """One line for the operator at start: who may read, write and administer."""
        if not self.keys:
            if is_loopback_host(self.host):
                return (
                    f"access: no API keys configured; bound to {self.host}, so only this "
                    "machine can reach it: searches and writes (documents, feedback) are open to "
                    "local clients, admin routes are off. Set retriever.write_api_key and "
                    "retriever.admin_api_key before serving other addresses."
                )
            return (
                f"access: INSECURE: no API keys configured and bound to {self.host}: anyone who "
                "can reach this port can change the index and the training data (--insecure)."
            )
        reads = (
            f"searches need a key ({self.counts[Role.READ]} read key(s) or any write/admin key)"
            if self.configured(Role.READ)
            else "searches are open (no read key configured)"
        )
        if self.configured(Role.WRITE) or self.configured(Role.ADMIN):
            writes = (
                f"writes need a write or admin key ({self.counts[Role.WRITE]} write, "
                f"{self.counts[Role.ADMIN]} admin)"
            )
        else:
            writes = "writes are off (no write or admin key configured)"
        admin = (
            "admin routes need an admin key"
            if self.configured(Role.ADMIN)
            else "admin routes are off (no admin key configured)"
        )
        return f"access: {reads}; {writes}; {admin}."

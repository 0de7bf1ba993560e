"""Background responses (`background: true`): who created each one, retrieval for its creator only, and its usage
charged once.

The upstream answers a background request at once (`"status": "queued"`, no usage) and does the work later, so
its creation is charged nothing and keeps its TPM and budget reservations. The gateway remembers the response id
with the key that created it, in the ledger's storage (SQLite, or Redis shared by every replica), before the
client has the id. A retrieval is answered only for that key (or an admin key; any other gets 404). The first
retrieval that reports the response finished with its usage claims it (atomically, across workers and replicas):
that usage is charged to the creating key, on the creation's route and model, and its budget reservation becomes
that usage. Later polls are charged nothing. A response never retrieved keeps its creation's reservation.
"""

from __future__ import annotations

import re

from app.access.auth import KeyStore
from app.access.keys import KeyEntry
from app.access.ratelimit import RateLimiter
from app.context import RequestInfo
from app.errors import NotFound
from app.ledger import Ledger, Owner
from app.proxy.usage import Tokens

# The first id of a Responses answer is the response's own: it leads the object, and every stream's first event
# carries the response.
RESPONSE_ID = re.compile(rb'"id"\s*:\s*"([A-Za-z0-9_.:-]{1,200})"')
SEARCH_AT_MOST = 64 * 1024  # bytes of an answer searched for its id


class IdTap:
    """The answer's response id, found in passing in its first bytes."""

    __slots__ = ("_seen", "id")

    def __init__(self) -> None:
        self._seen = b""
        self.id: str | None = None

    def feed(self, chunk: bytes) -> None:
        if self.id is not None or len(self._seen) > SEARCH_AT_MOST:
            return
        self._seen += chunk
        found = RESPONSE_ID.search(self._seen)
        if found is not None:
            self.id, self._seen = found.group(1).decode(), b""


class Background:
    def __init__(self, ledger: Ledger, limiter: RateLimiter, keys: KeyStore | None):
        self.ledger = ledger
        self.limiter = limiter
        self.keys = keys

    async def owner(self, key: KeyEntry | None, response_id: str) -> Owner | None:
        """Who created the response; NotFound for any key but its creator or an admin (with a keys file, a
        response the gateway did not see created has no owner to show it to)."""
        owner = await self.ledger.owner(response_id)
        if key is not None and (owner is None or (owner.key != key.name and not key.admin)):
            raise NotFound(f"No response with id '{response_id[:80]}' exists for this key.", param="response_id")
        return owner

    async def created(self, info: RequestInfo, response_id: str) -> None:
        """A background request was answered with this id: remember its creator. Its usage waits for a retrieval,
        unless the answer already carried it (a background stream followed to its end)."""
        reserved_cost = self.limiter.cost(info.model, info.route, info.estimate)
        owner = Owner(info.key_name or "-", info.route, info.model or "-", info.model_label, *reserved_cost)
        await self.ledger.remember(response_id, owner)
        if info.input_tokens is not None:
            await self.ledger.claim(response_id)  # charged by this request, as any other answer with usage
        else:
            info.deferred = True

    async def retrieved(self, info: RequestInfo, owner: Owner | None, response_id: str) -> None:
        """A retrieval was relayed: charge the creator the usage it reported, if this is the first to report it."""
        if info.input_tokens is None:
            return  # not finished yet
        if owner is None or not await self.ledger.claim(response_id):
            info.input_tokens = info.output_tokens = None  # charged once already (or never ours to charge)
            return
        info.charged_to = owner
        creator = self.keys.named(owner.key) if self.keys is not None else None
        if creator is not None:
            charged = Tokens(info.input_tokens, info.output_tokens or 0)
            await self.limiter.settle_later(creator, owner, charged)

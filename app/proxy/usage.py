"""What a request costs in tokens: the one value type (`Tokens`), the one charging rule (`charge`) that TPM
settlement, budgets, the ledger and the metrics all read, and the taps that learn a request's usage from the
upstream's bytes as they pass through, JSON bodies and streams alike.

Nothing is buffered or parsed on the way: each chunk is searched for a key that only a usage object carries
(the route's `UsageFields.marker`, e.g. `"completion_tokens"`; quotes inside JSON strings are escaped, so model
text cannot forge it). Only around a hit is a small slice kept and parsed: the usage object, never the event.
Every usage object seen counts, in order: a later one replaces what it reports (an Anthropic stream reports its
input in `message_start` and its final output in the last `message_delta`).
Where an answer reports no usage (aichat never does; OpenAI chat streams only with `include_usage`; a stream cut
before its usage), `TextMeter` measures the generated text relayed, so such an answer is charged at least what
it produced.
"""

from __future__ import annotations

import functools
import math
import re
from dataclasses import dataclass
from typing import NamedTuple, Protocol

import orjson

BYTES_PER_TOKEN = 4  # the usual estimate for English text and JSON, where usage must be guessed before it is known
TAIL = 640  # bytes of the stream kept behind each chunk: enough to reach back from a marker to its `"usage"` key
GIVE_UP = 64 * 1024  # a usage object never grows this large; stop collecting if it seems to


class Tap(Protocol):
    """Reads an answer in passing: fed each chunk once it is on its way to the client."""

    def feed(self, chunk: bytes) -> None: ...


@dataclass(frozen=True, slots=True)
class Tokens:
    """Input and output tokens: an estimate, a reservation, a reported usage or a charge. `units` counts what a
    route bills besides tokens (its RouteSpec's `unit`: characters, audio seconds, images); the tokens remain
    what TPM and budgets count, on every route."""

    input: int = 0
    output: int = 0
    units: int = 0

    @property
    def total(self) -> int:
        return self.input + self.output


NO_TOKENS = Tokens()


class Owner(NamedTuple):
    """Who created a background response, for its retrieval: the key, the route and model it was created on, and
    the tokens (and millionths of the currency) its creation left reserved in the key's budgets, replaced by its
    usage when it completes."""

    key: str
    route: str
    model: str
    label: str  # the model's metrics label (app/proxy/catalog.py: bounded)
    reserved: int
    reserved_cost: int = 0


class Outcome(Protocol):
    """What the charging rule reads of a finished request (app/context.py's RequestInfo, which holds these
    types: named here by shape, so that this module imports nothing of the request's)."""

    @property
    def upstream_ttfb(self) -> float | None: ...
    @property
    def input_tokens(self) -> int | None: ...
    @property
    def output_tokens(self) -> int | None: ...
    @property
    def units(self) -> int | None: ...
    @property
    def upstream_error(self) -> str | None: ...
    @property
    def deferred(self) -> bool: ...
    @property
    def text(self) -> TextMeter | None: ...
    @property
    def estimate(self) -> Tokens: ...


def charge(info: Outcome) -> Tokens | None:
    """The one charging rule: what a forwarded request spent, for TPM settlement, budgets, the ledger and the
    metrics alike. None when the upstream never answered (nothing reached it, or it said nothing).

    - the upstream's reported usage, when the answer carried it;
    - nothing for an upstream error status (the upstream did not do the work);
    - on a route whose text is measured (`TextMeter`): the input estimate and the output relayed, at least one
      token per text piece and at least its bytes at BYTES_PER_TOKEN, every choice counted;
    - otherwise the admission estimate (its input, and its output cap as reserved).
    Units (characters, audio seconds, images) are the upstream's report when it gives one (a transcription's
    `seconds`), else the admission's count.
    A background response's creation is charged nothing here: its usage is charged once, to the key that
    created it, when a retrieval first reports it completed (app/proxy/background.py)."""
    if info.upstream_ttfb is None:
        return None
    units = info.units if info.units is not None else info.estimate.units
    if info.input_tokens is not None:
        return Tokens(info.input_tokens, info.output_tokens or 0, units)
    if info.upstream_error == "status" or info.deferred:
        return NO_TOKENS
    if info.text is not None:
        return Tokens(info.estimate.input, info.text.tokens, units)
    return Tokens(info.estimate.input, info.estimate.output, units)


@dataclass(frozen=True, slots=True)
class UsageFields:
    """Where a route's answers report usage: a key only the usage object carries, and its two counts."""

    marker: bytes
    input: str
    output: str | None  # None: the route reports input tokens only (embeddings); output counts as 0
    input_extra: tuple[str, ...] = ()  # counts added to `input` when present (Anthropic's cache tokens)
    partial: bool = False  # a usage object may carry either count alone; each is taken where it appears
    units: str | None = None  # the usage key that reports the route's units (a transcription's `seconds`)
    container: bytes = b'"usage"'  # the key of the usage object


RESPONSES_USAGE = UsageFields(b'"output_tokens"', "input_tokens", "output_tokens")  # images (gpt-image-1) too
CHAT_USAGE = UsageFields(b'"completion_tokens"', "prompt_tokens", "completion_tokens")
EMBEDDINGS_USAGE = UsageFields(b'"prompt_tokens"', "prompt_tokens", None)
MESSAGES_USAGE = UsageFields(
    b'"output_tokens"',
    "input_tokens",
    "output_tokens",
    input_extra=("cache_creation_input_tokens", "cache_read_input_tokens"),
    partial=True,
)
# gpt-transcribe reports `{"type": "tokens", "input_tokens", ...}`, whisper-1 `{"type": "duration", "seconds"}`:
# `"type"` is the one key both carry (an event's own `"type"` has no `"usage"` before it, and is passed over)
TRANSCRIPTION_USAGE = UsageFields(b'"type"', "input_tokens", "output_tokens", units="seconds")
# Gemini: every streamed chunk may carry `usageMetadata`; the last one read wins
GEMINI_USAGE = UsageFields(
    b'"candidatesTokenCount"', "promptTokenCount", "candidatesTokenCount", container=b'"usageMetadata"'
)


# An object whose braces nest two deep at most (every usage object: its `*_details` are one level down), matched
# by one C call within a bounded window; deeper, longer or incomplete ones are walked brace by brace. Possessive
# quantifiers: a failed match never backtracks, so it costs one pass over the window at most.
_SHALLOW_OBJECT = re.compile(rb"\{(?:[^{}]++|\{[^{}]*+\})*+\}")
SHALLOW_WINDOW = 2048


def _closing_brace(data: bytes, start: int) -> int:
    """Index of the brace closing the object opened at `start`, or -1 if it has not arrived yet."""
    if shallow := _SHALLOW_OBJECT.match(data, start, start + SHALLOW_WINDOW):
        return shallow.end() - 1
    depth, index = 0, start
    while True:  # jump from brace to brace with bytes.find: a Python loop over every byte cost ~10 us a request
        closing = data.find(b"}", index)
        if closing < 0:
            return -1
        opening = data.find(b"{", index, closing)
        if opening >= 0:
            depth, index = depth + 1, opening + 1
            continue
        depth, index = depth - 1, closing + 1
        if depth == 0:
            return closing


class UsageTap:
    __slots__ = ("_open", "_tail", "fields", "input_tokens", "output_tokens", "units")

    def __init__(self, fields: UsageFields) -> None:
        self.fields = fields
        self._tail = b""
        self._open: bytes | None = None  # bytes from just before a usage object, while it is incomplete
        self.input_tokens: int | None = None
        self.output_tokens: int | None = None
        self.units: int | None = None

    def feed(self, chunk: bytes) -> None:
        if self._open is not None:
            self._open += chunk
            self._finish()
        elif (marker := self.fields.marker) in chunk or marker in self._tail[-32:] + chunk[:32]:
            self._open = self._tail + chunk
            self._finish()
        # the stream's last TAIL bytes, however small its chunks (small copies only)
        self._tail = chunk[-TAIL:] if len(chunk) >= TAIL else (self._tail + chunk)[-TAIL:]

    def _finish(self) -> None:
        """Read every complete usage object in the bytes kept; keep from the key of one still incomplete. An
        object kept from the previous chunk's tail may be read twice: harmless, as the later reading wins."""
        data = self._open
        assert data is not None
        self._open, start = None, 0
        while (marker := data.find(self.fields.marker, start)) >= 0:
            key = data.rfind(self.fields.container, 0, marker)
            opening = data.find(b"{", key) if key >= 0 else -1
            if opening < 0 or opening > marker:
                start = marker + 1  # not a usage object we can place; count nothing rather than guess
                continue
            closing = _closing_brace(data, opening)
            if closing < 0:
                if len(data) - key <= GIVE_UP:
                    self._open = data[key:]
                return
            self._read(data[opening : closing + 1])
            start = closing + 1

    def _read(self, raw: bytes) -> None:
        try:
            usage = orjson.loads(raw)
        except orjson.JSONDecodeError:
            return
        if not isinstance(usage, dict):
            return
        fields = self.fields
        if fields.units is not None and isinstance(units := usage.get(fields.units), int | float):
            self.units = max(1, math.ceil(units))  # AceData bills a started second as a whole one
        inputs = usage.get(fields.input)
        outputs = usage.get(fields.output) if fields.output is not None else 0
        if fields.input_extra and isinstance(inputs, int):  # a generator costs ~1 us even over nothing
            inputs += sum(count for name in fields.input_extra if isinstance(count := usage.get(name), int))
        if fields.partial:
            if isinstance(inputs, int):
                self.input_tokens = inputs
            if isinstance(outputs, int):
                self.output_tokens = outputs
        elif isinstance(inputs, int) and isinstance(outputs, int):
            self.input_tokens, self.output_tokens = inputs, outputs


class TextMeter:
    """The generated text of an answer, measured in passing: the bytes of every string value of the route's text
    keys (`"content"`, `"delta_answer"`, ...), with no parse of the events that carry them. A value split across
    chunks is measured whole: what follows its last complete value is carried to the next chunk."""

    __slots__ = ("_carry", "_key", "_value", "bytes", "pieces")

    CARRY_AT_MOST = 1 << 20  # a value longer than this is measured in parts (it still counts every byte)

    def __init__(self, keys: tuple[str, ...]) -> None:
        self._key, self._value = _text_patterns(keys)
        self._carry = b""
        self.bytes = 0
        self.pieces = 0  # non-empty values: a stream's deltas each carry a token or more

    def feed(self, chunk: bytes) -> None:
        data = self._carry + chunk if self._carry else chunk
        end = 0
        for match in self._value.finditer(data):
            size = match.end(1) - match.start(1)
            if size:
                self.bytes += size
                self.pieces += 1
            end = match.end()
        opened = self._key.search(data, end)
        if opened is None:
            self._carry = data[max(end, len(data) - 32) :]  # a key may begin at the very end
        elif len(data) - opened.start() > self.CARRY_AT_MOST:
            self.bytes += len(data) - opened.end()
            self.pieces += 1
            self._carry = b""
        else:
            self._carry = data[opened.start() :]

    @property
    def tokens(self) -> int:
        return max(self.pieces, math.ceil(self.bytes / BYTES_PER_TOKEN))


@functools.cache
def _text_patterns(keys: tuple[str, ...]) -> tuple[re.Pattern[bytes], re.Pattern[bytes]]:
    """The patterns of a key set's opening and of its whole string values, built once per set: routes have a
    handful of sets, and building them (escape, join, re's cache lookups) cost more than a JSON answer's feed."""
    names = "|".join(re.escape(key) for key in keys).encode()
    return re.compile(rb'"(?:' + names + rb')"\s*:\s*"'), re.compile(
        rb'"(?:' + names + rb')"\s*:\s*"((?:[^"\\]|\\.)*)"'
    )

"""`multipart/form-data` request bodies, read for validation only: a streaming parser (python-multipart) walks the
bytes already received and keeps the text fields (small) and the size of each file part, never a copy of a file.
The forwarded body stays the client's bytes."""

from __future__ import annotations

from python_multipart.exceptions import MultipartParseError
from python_multipart.multipart import MultipartParser, MultipartState, parse_options_header

from app.errors import InvalidRequest
from app.types import Body

FIELD_LIMIT = 64 * 1024  # a text field longer than this is refused: prompts and options, never data
FIELDS_AT_MOST = 256  # parts in one form; more is not a client but an attack on the parser


def boundary(content_type: bytes | None) -> bytes:
    """The form's boundary, or InvalidRequest when the body is not `multipart/form-data`."""
    media, options = parse_options_header(content_type or b"")
    found = options.get(b"boundary")
    if media != b"multipart/form-data" or not found:
        raise InvalidRequest("Content-Type must be multipart/form-data with a boundary.")
    return found


class _Form:
    """The parts of a form as the parser reports them: text fields by name, file parts as their sizes."""

    def __init__(self) -> None:
        self.document: dict[str, object] = {}
        self.text_bytes = 0
        self._field = b""
        self._header = b""
        self._headers: list[tuple[bytes, bytes]] = []
        self._value = bytearray()
        self._size = 0
        self._parts = 0
        self._name, self._file = "", False

    def on_header_field(self, data: bytes, start: int, end: int) -> None:
        self._field += data[start:end]

    def on_header_value(self, data: bytes, start: int, end: int) -> None:
        self._header += data[start:end]

    def on_header_end(self) -> None:
        self._headers.append((self._field, self._header))
        self._field, self._header = b"", b""

    def on_headers_finished(self) -> None:
        self._name, self._file = self._disposition()

    def on_part_data(self, data: bytes, start: int, end: int) -> None:
        self._size += end - start
        if self._file:
            return
        if self._size > FIELD_LIMIT:
            raise InvalidRequest(f"A form field is over {FIELD_LIMIT} bytes; send data as a file part.")
        self._value += data[start:end]

    def on_part_end(self) -> None:
        self._parts += 1
        if self._parts > FIELDS_AT_MOST:
            raise InvalidRequest(f"The form has more than {FIELDS_AT_MOST} parts.")
        name = self._name
        if self._file:  # `image` and `image[]` alike: the sizes of every file sent under the name
            sizes = self.document.setdefault(name.removesuffix("[]"), [])
            if isinstance(sizes, list):
                sizes.append(self._size)
        else:
            self.text_bytes += self._size
            self.document.setdefault(name, self._value.decode("utf-8", "replace"))
        self._headers, self._value, self._size = [], bytearray(), 0

    def _disposition(self) -> tuple[str, bool]:
        for field, value in self._headers:
            if field.strip().lower() == b"content-disposition":
                _, options = parse_options_header(value)
                name = options.get(b"name", b"").decode("utf-8", "replace")
                return name, b"filename" in options
        raise InvalidRequest("A form part has no Content-Disposition name.")


def read_form(content_type: bytes | None, body: Body) -> tuple[dict[str, object], int]:
    """The form's fields (text as str, file parts as a list of their sizes in bytes, `name[]` under `name`) and
    the bytes of its text fields, or InvalidRequest when the body is not a well-formed form."""
    form = _Form()
    callbacks = {
        "on_header_field": form.on_header_field,
        "on_header_value": form.on_header_value,
        "on_header_end": form.on_header_end,
        "on_headers_finished": form.on_headers_finished,
        "on_part_data": form.on_part_data,
        "on_part_end": form.on_part_end,
    }
    parser = MultipartParser(boundary(content_type), callbacks)  # type: ignore[arg-type]
    try:
        parser.write(body)  # type: ignore[arg-type]  # it only indexes and searches: a bytearray does
        parser.finalize()
    except MultipartParseError as exc:
        raise InvalidRequest(f"The multipart body is not well formed: {exc}") from None
    if parser.state != MultipartState.END:  # finalize() does not check that the closing boundary came
        raise InvalidRequest("The multipart body ended before its closing boundary.")
    return form.document, form.text_bytes

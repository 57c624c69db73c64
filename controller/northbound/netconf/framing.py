"""NETCONF message framing (RFC 6242) and hardened XML parsing.

Framing counts bytes, never characters. A session starts with end-of-message framing (base:1.0,
messages end with `]]>]]>`) and switches to chunked framing (base:1.1) after both hellos
announce base:1.1. The XML parser resolves no entities, loads no DTD and touches no network, so
XXE and "billion laughs" documents are refused, as is any message over the size limit.
"""

from __future__ import annotations

import re

from lxml import etree

EOM = b"]]>]]>"
MAX_MESSAGE_BYTES = 16 * 1024 * 1024
_CHUNK_HEADER = re.compile(rb"\n#([1-9][0-9]{0,9})\n")
_END_OF_CHUNKS = b"\n##\n"


class MalformedMessage(Exception):
    """A message that cannot be framed or parsed: answered with malformed-message (or the session
    closes, when the framing itself is lost)."""


class FramingLost(MalformedMessage):
    """The byte stream no longer follows the framing: the session cannot continue (RFC 6242 4.2)."""


class MessageReader:
    """Turns the bytes of a session into whole messages, in either framing."""

    def __init__(self, max_message_bytes: int = MAX_MESSAGE_BYTES) -> None:
        self.max_message_bytes = max_message_bytes
        self.chunked = False
        self._buffer = bytearray()
        self._chunks: list[bytes] = []
        self._chunked_size = 0

    def feed(self, data: bytes) -> None:
        self._buffer.extend(data)

    def next(self) -> bytes | None:
        """The next whole message, or None until more bytes come. One at a time: a hello and an
        rpc may arrive in one write, and the framing may change between them."""
        return self._next_chunked() if self.chunked else self._next_eom()

    def _next_eom(self) -> bytes | None:
        end = self._buffer.find(EOM)
        if end < 0:
            # Over the limit, not counting the terminator's first bytes if they are already here.
            pending = next((k for k in range(len(EOM) - 1, 0, -1) if self._buffer.endswith(EOM[:k])), 0)
            if len(self._buffer) - pending > self.max_message_bytes:
                raise FramingLost(f"message over {self.max_message_bytes} bytes")
            return None
        if end > self.max_message_bytes:
            raise FramingLost(f"message over {self.max_message_bytes} bytes")
        message = bytes(self._buffer[:end])
        del self._buffer[:end + len(EOM)]
        return message

    def _next_chunked(self) -> bytes | None:
        while True:
            size = self._chunk_header()
            if size is None:
                return None
            if size == 0:  # end of chunks
                del self._buffer[:len(_END_OF_CHUNKS)]
                if not self._chunks:
                    raise FramingLost("end of chunks without a chunk")
                message = b"".join(self._chunks)
                self._chunks, self._chunked_size = [], 0
                return message
            header_length = self._buffer.index(b"\n", 2) + 1
            if self._chunked_size + size > self.max_message_bytes:
                raise FramingLost(f"message over {self.max_message_bytes} bytes")
            if len(self._buffer) < header_length + size:
                return None  # the chunk's data is still arriving
            self._chunks.append(bytes(self._buffer[header_length:header_length + size]))
            self._chunked_size += size
            del self._buffer[:header_length + size]

    def _chunk_header(self) -> int | None:
        """The size announced by the chunk header at the start of the buffer; 0 for end-of-chunks;
        None while the header is incomplete. FramingLost as soon as it cannot be a header."""
        buffer = self._buffer
        if len(buffer) < 3:
            if not b"\n#".startswith(bytes(buffer)):
                raise FramingLost("bad chunk header")
            return None
        if not buffer.startswith(b"\n#"):
            raise FramingLost("bad chunk header")
        if buffer[2:3] == b"#":
            if len(buffer) < 4:
                return None
            if buffer[3:4] != b"\n":
                raise FramingLost("bad end-of-chunks marker")
            return 0
        newline = buffer.find(b"\n", 2)
        if newline < 0:
            if len(buffer) > 13:  # "\n#" + 10 digits and still no newline
                raise FramingLost("bad chunk header")
            return None
        header = _CHUNK_HEADER.fullmatch(bytes(buffer[:newline + 1]))
        if header is None:
            raise FramingLost("bad chunk header")
        return int(header.group(1))


def frame(message: bytes, chunked: bool) -> bytes:
    if chunked:
        return b"\n#%d\n" % len(message) + message + _END_OF_CHUNKS
    return message + EOM


_PARSER = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False, huge_tree=False,
                          remove_blank_text=True, dtd_validation=False)


def parse_xml(message: bytes) -> etree._Element:
    """The message's root element; MalformedMessage for anything not plain, well-formed XML
    (a DOCTYPE, entity declarations or references, bad encoding...)."""
    if b"<!DOCTYPE" in message or b"<!ENTITY" in message:
        raise MalformedMessage("DTDs and entity declarations are not accepted")
    try:
        root = etree.fromstring(message, _PARSER)
    except (etree.XMLSyntaxError, ValueError) as exc:
        raise MalformedMessage(f"not well-formed XML: {exc}") from None
    if root is None:
        raise MalformedMessage("empty message")
    info = root.getroottree().docinfo
    if info.doctype or info.internalDTD is not None:  # e.g. hidden from the byte check in UTF-16
        raise MalformedMessage("DTDs and entity declarations are not accepted")
    if (info.encoding or "UTF-8").upper() not in ("UTF-8", "UTF8"):
        raise MalformedMessage(f"NETCONF messages are UTF-8, not {info.encoding}")
    return root

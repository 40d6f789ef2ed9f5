"""A minimal Switchboard client written from docs/PROTOCOL.md alone (its section numbers are cited).

It is the other-language side of test/js/protocol-document-is-true.test.mjs: if this client
needs anything the document does not say, the document is incomplete. It uses Python 3's
standard library and Debian's python3-msgpack for the msgpack values; the framing, the
envelope and the value codec's ext types are written here from the document.

Not a library: blocking I/O on one socket, no reconnect, no offline queue (section 8 asks for
those of a real client).
"""

import os
import socket
import struct
import sys

try:
    import msgpack
except ImportError:  # the test turns this message into its failure
    sys.stderr.write(
        "python3 cannot import msgpack: install Debian's python3-msgpack (bash .ci/deps)\n"
    )
    sys.exit(3)

# Section 4: kinds.
HELLO, WELCOME, SUBSCRIBE, UNSUBSCRIBE, EVENT = 1, 2, 3, 4, 5
REGISTER, UNREGISTER, INVOKE, RESULT, ERROR = 6, 7, 8, 9, 10
CANCEL, PING, PONG, GOAWAY, PEER = 11, 12, 13, 14, 15
KIND_NAMES = {
    1: "HELLO", 2: "WELCOME", 3: "SUBSCRIBE", 4: "UNSUBSCRIBE", 5: "EVENT", 6: "REGISTER",
    7: "UNREGISTER", 8: "INVOKE", 9: "RESULT", 10: "ERROR", 11: "CANCEL", 12: "PING",
    13: "PONG", 14: "GOAWAY", 15: "PEER",
}

# Section 3: flags.
FLAG_RAW_PAYLOAD = 1
FLAG_FROM_HUB = 2


class ProtocolError(Exception):
    pass


# --- Section 10: the value codec's ext types ------------------------------------------------------


class Undefined:
    """JavaScript's undefined (ext 1); also what an empty payload means (section 3)."""

    def __repr__(self):
        return "undefined"


UNDEFINED = Undefined()


class BigInt:
    """A JavaScript BigInt (ext 3), kept apart from int, which msgpack writes as an integer."""

    def __init__(self, value):
        self.value = value

    def __eq__(self, other):
        return isinstance(other, BigInt) and other.value == self.value

    def __repr__(self):
        return f"{self.value}n"


class JsDate:
    """A JavaScript Date (ext 2): milliseconds since the epoch, a float64."""

    def __init__(self, ms):
        self.ms = ms

    def __eq__(self, other):
        return isinstance(other, JsDate) and other.ms == self.ms

    def __repr__(self):
        return f"Date({self.ms})"


class JsBuffer:
    """A Node.js Buffer (ext 10): bytes that arrive as a Buffer in Node.js. Not a subclass of
    bytes: msgpack would write one as bin without asking _ext_default."""

    def __init__(self, data):
        self.data = bytes(data)

    def __eq__(self, other):
        return isinstance(other, JsBuffer) and other.data == self.data

    def __repr__(self):
        return f"Buffer({self.data!r})"


class JsError:
    """A JavaScript Error (ext 4): the map of section 10.2, keys as sent."""

    def __init__(self, fields):
        self.fields = fields

    def __repr__(self):
        return f"JsError({self.fields!r})"


def _ext_default(value):
    if isinstance(value, Undefined):
        return msgpack.ExtType(1, b"")
    if isinstance(value, JsDate):
        return msgpack.ExtType(2, struct.pack(">d", float(value.ms)))
    if isinstance(value, BigInt):
        sign = b"\x01" if value.value < 0 else b"\x00"
        magnitude = abs(value.value)
        raw = magnitude.to_bytes((magnitude.bit_length() + 7) // 8, "big") if magnitude else b""
        return msgpack.ExtType(3, sign + raw)
    if isinstance(value, JsError):
        return msgpack.ExtType(4, encode_value(value.fields))
    if isinstance(value, JsBuffer):
        return msgpack.ExtType(10, value.data)
    raise TypeError(f"cannot encode {type(value).__name__}")


def _ext_hook(code, data):
    if code == 1:
        if data:
            raise ProtocolError("ext 1 (undefined) with data")
        return UNDEFINED
    if code == 2:
        if len(data) != 8:
            raise ProtocolError("ext 2 (Date) must be 8 bytes")
        return JsDate(struct.unpack(">d", data)[0])
    if code == 3:
        if not data or data[0] not in (0, 1) or (len(data) > 1 and data[1] == 0):
            raise ProtocolError("malformed ext 3 (BigInt)")
        if data == b"\x01":
            raise ProtocolError("ext 3: negative zero")
        magnitude = int.from_bytes(data[1:], "big")
        return BigInt(-magnitude if data[0] == 1 else magnitude)
    if code == 4:
        fields = decode_value(data)
        if not isinstance(fields, dict):
            raise ProtocolError("ext 4 (Error) must hold a map")
        return JsError(fields)
    if code == 10:
        return JsBuffer(data)
    # Types this client does not need (Map, Set, RegExp, typed arrays...) stay visible as ExtType.
    return msgpack.ExtType(code, data)


def encode_value(value):
    """One value in the value codec's msgpack (section 10); bytes become bin."""
    return msgpack.packb(value, default=_ext_default, use_bin_type=True)


def decode_value(payload):
    """Section 3: an empty payload (bin of length 0, or nil) carries no value: undefined."""
    if not payload:
        return UNDEFINED
    return msgpack.unpackb(
        payload, ext_hook=_ext_hook, raw=False, strict_map_key=False
    )


# --- Sections 2 and 3: frames and the envelope -----------------------------------------------------


def encode_envelope(kind, msg_id, topic, flags=0, payload=b""):
    """Section 3: [version, kind, id, topic, flags, sender, payload]; sender 0 (the hub sets it)."""
    body = msgpack.packb([1, kind, msg_id, topic, flags, 0, payload], use_bin_type=True)
    return struct.pack(">I", len(body)) + body


class Envelope:
    __slots__ = ("kind", "id", "topic", "flags", "sender", "payload", "frame")

    def __repr__(self):
        return (
            f"{KIND_NAMES.get(self.kind, self.kind)} id={self.id} topic={self.topic!r} "
            f"flags={self.flags} sender={self.sender} payload={len(self.payload)} bytes"
        )


def decode_envelope(frame):
    """`frame` is a whole frame, length prefix included (kept for the byte examples)."""
    body = frame[4:]
    try:
        fields = msgpack.unpackb(body, raw=False, use_list=True, strict_map_key=False)
    except Exception as err:  # trailing bytes, truncation: all E_PROTOCOL
        raise ProtocolError(f"malformed envelope: {err}") from err
    if not isinstance(fields, list) or len(fields) != 7:
        raise ProtocolError("the envelope is not an array of 7")
    version, kind, msg_id, topic, flags, sender, payload = fields
    for name, v in (("version", version), ("kind", kind), ("id", msg_id), ("flags", flags),
                    ("sender", sender)):
        if isinstance(v, bool) or not isinstance(v, int) or v < 0:
            raise ProtocolError(f"envelope {name} is not an unsigned integer: {v!r}")
    if version != 1:
        raise ProtocolError(f"envelope version {version}")
    if not isinstance(topic, str):
        raise ProtocolError("envelope topic is not a str")
    if payload is None:
        payload = b""
    if not isinstance(payload, bytes):
        raise ProtocolError("envelope payload is neither bin nor nil")
    env = Envelope()
    env.kind, env.id, env.topic, env.flags, env.sender = kind, msg_id, topic, flags, sender
    env.payload, env.frame = payload, bytes(frame)
    return env


class Connection:
    """One connection to a hub: section 1.1 (Unix socket), section 5 (handshake)."""

    def __init__(self, endpoint, token, role="python", name="conformance", timeout=10.0):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(timeout)
        self.sock.connect(endpoint)
        self.buf = b""
        self.max_frame = 4096  # section 2: until WELCOME
        hello = {"protocol": 1, "token": token, "role": role, "name": name, "pid": os.getpid()}
        self.send(HELLO, 0, "", encode_value(hello))
        self.welcome = self.recv()
        if self.welcome.kind != WELCOME:
            raise ProtocolError(f"expected WELCOME, got {self.welcome!r}")
        info = decode_value(self.welcome.payload)
        self.peer_id = info["peer"]
        self.max_frame = info["max_frame"]
        self.hub_pid = info["hub_pid"]
        self.hub_name = info["hub_name"]

    def send(self, kind, msg_id, topic, payload=b"", flags=0):
        frame = encode_envelope(kind, msg_id, topic, flags, payload)
        self.send_raw(frame)

    def send_raw(self, frame):
        if len(frame) - 4 > self.max_frame:
            raise ProtocolError("frame above the hub's max_frame")  # section 8: refuse locally
        self.sock.sendall(frame)

    def _read_frame(self):
        while True:
            if len(self.buf) >= 4:
                (length,) = struct.unpack(">I", self.buf[:4])
                if length == 0:
                    raise ProtocolError("zero-length frame")  # section 2
                if length > max(self.max_frame, 4096):
                    raise ProtocolError(f"frame of {length} bytes above the limit")
                if len(self.buf) >= 4 + length:
                    frame, self.buf = self.buf[: 4 + length], self.buf[4 + length :]
                    return frame
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("the hub closed the connection")
            self.buf += chunk

    def recv(self):
        """The next envelope; PINGs are answered here (section 6.5) and passed on too."""
        env = decode_envelope(self._read_frame())
        if env.kind == PING:
            self.send(PONG, env.id, "")
        return env

    def close(self):
        self.send(GOAWAY, 0, "E_CLOSED", encode_value("closing"))  # section 6.6
        self.sock.close()


def refused(endpoint, token):
    """Sends HELLO with `token` and returns the GOAWAY frame the hub answers with (section 5.3)."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(10.0)
    sock.connect(endpoint)
    hello = {"protocol": 1, "token": token, "role": "python", "name": "intruder", "pid": os.getpid()}
    sock.sendall(encode_envelope(HELLO, 0, "", 0, encode_value(hello)))
    data = b""
    while True:
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    sock.close()
    if len(data) < 4:
        raise ProtocolError("the hub closed without GOAWAY")
    (length,) = struct.unpack(">I", data[:4])
    return decode_envelope(data[: 4 + length])

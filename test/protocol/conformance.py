"""The Python side of test/js/protocol-document-is-true.test.mjs (run by it; not on its own).

Joins the hub named by SWITCHBOARD_ENDPOINT and SWITCHBOARD_TOKEN (docs/PROTOCOL.md, section
1.3), then: subscribes, registers two handlers, emits events with Date, BigInt, bytes and
Buffer values, an event in unusual but valid encodings and a raw-payload event, serves the
invokes the Node.js side makes, invokes Node.js handlers (a result, values, a remote error, a
name nobody serves), and is refused with a wrong token. Asserts what the document promises on
the way; prints one JSON object per line on stdout: {"capture": label, "hex": ...} for every
frame the test compares with a byte example of the document, {"done": ...} at the end. Any
broken promise raises (a traceback on stderr, exit status 1).

CONFORMANCE_PEERS lists the peer ids already admitted when this client joins (comma-separated).
"""

import json
import os
import struct
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import switchboard_client as sb  # noqa: E402  (after the path is set)


def say(**fields):
    sys.stdout.write(json.dumps(fields) + "\n")
    sys.stdout.flush()


def capture(label, env):
    say(capture=label, hex=env.frame.hex())


def check(cond, what):
    if not cond:
        raise AssertionError(what)


endpoint = os.environ["SWITCHBOARD_ENDPOINT"]
token = os.environ["SWITCHBOARD_TOKEN"]
already = sorted(int(x) for x in os.environ["CONFORMANCE_PEERS"].split(","))

c = sb.Connection(endpoint, token, role="python", name="conformance")
me = c.peer_id
capture("welcome", c.welcome)
check(c.welcome.id == 0 and c.welcome.sender == 0 and c.welcome.topic == "", "WELCOME fields")
check(me not in already and me > 0, f"peer id {me}")
check(c.max_frame == 64 * 1024 * 1024, f"max_frame {c.max_frame}")

inbox = []  # received and not yet taken by expect()
served = {}  # handler name -> how many calls served


def serve(env):
    """Section 6.3: answer an INVOKE with exactly one RESULT or ERROR carrying its id."""
    request = sb.decode_value(env.payload)
    served[env.topic] = served.get(env.topic, 0) + 1
    if env.topic == "py:echo":
        capture("invoke-received", env)
        check(env.sender == 1, f"an invoke from the hub's own process has sender 1, got {env.sender}")
        c.send(sb.RESULT, env.id, "", sb.encode_value({"n": request["n"] + 1, "echo": request}))
    elif env.topic == "py:fail":
        # Section 7: the topic of a remote ERROR is the callee's to choose; Node.js callers read the
        # code from the ext 4 map.
        err = sb.JsError({"name": "ValueError", "message": f"bad n: {request['n']}",
                          "code": "E_BAD_N", "props": {"n": request["n"]}})
        c.send(sb.ERROR, env.id, "ValueError", sb.encode_value(err))
    else:
        raise AssertionError(f"INVOKE for a name this client never registered: {env!r}")


def expect(pred, what):
    for i, env in enumerate(inbox):
        if pred(env):
            return inbox.pop(i)
    while True:
        env = c.recv()
        if env.kind == sb.GOAWAY:
            raise AssertionError(f"GOAWAY {env.topic} while waiting for {what}")
        if env.kind == sb.PING:
            continue
        if env.kind == sb.INVOKE:
            serve(env)
            continue
        if pred(env):
            return env
        inbox.append(env)


def reply_to(msg_id):
    return lambda e: e.kind in (sb.RESULT, sb.ERROR) and e.id == msg_id


def request(kind, msg_id, topic, payload=b""):
    c.send(kind, msg_id, topic, payload)
    return expect(reply_to(msg_id), f"the reply to {sb.KIND_NAMES[kind]} {msg_id}")


def ack(kind, msg_id, topic):
    env = request(kind, msg_id, topic)
    check(env.kind == sb.RESULT, f"{sb.KIND_NAMES[kind]} {topic!r} acked with {env!r}")
    # Section 6.2: empty topic, flags 0, sender 0, empty payload (which decodes to undefined).
    check((env.topic, env.flags, env.sender, env.payload) == ("", 0, 0, b""), f"ack {env!r}")
    check(sb.decode_value(env.payload) is sb.UNDEFINED, "an empty payload is undefined")
    return env


# Section 6.2 and 6.7. One counter for control requests and invokes (section 6.3).
capture("subscribe-ack", ack(sb.SUBSCRIBE, 1, "job:*"))
# The PEER frames for the peers already there came between WELCOME and this ack; none is us.
peers = [e for e in inbox if e.kind == sb.PEER]
inbox[:] = [e for e in inbox if e.kind != sb.PEER]
infos = {e.id: sb.decode_value(e.payload) for e in peers}
check(sorted(infos) == already, f"PEER frames about {sorted(infos)}, expected {already}")
for e in peers:
    info = infos[e.id]
    check(info["id"] == e.id and info["up"] is True and e.topic == info["role"], f"PEER {info}")
    check(e.sender == 0 and e.flags == 0, f"PEER envelope {e!r}")
    if e.id == 1:
        capture("peer-hub", e)
        check(info["pid"] == c.hub_pid, "the hub's own process is peer 1")
ack(sb.REGISTER, 2, "py:echo")
ack(sb.REGISTER, 3, "py:fail")

# Values this client encodes, decoded by Node.js.
c.send(sb.EVENT, 0, "py:hello", sb.encode_value({
    "from": "python",
    "when": sb.JsDate(1700000000000),
    "big": sb.BigInt(-(2**70)),
    "bytes": b"\x00\x01\xff",
    "buf": sb.JsBuffer(b"xy"),
    "undef": sb.UNDEFINED,
    "list": [1, "a", None, True, 1.5],
}))
# Section 3: every form the hub accepts reaches every receiver. array 16, int 8 and int 16 for
# version, kind and flags, a str 8 topic, a nil payload.
body = bytes.fromhex("dc0007" "d001" "d005" "00" "d906") + b"py:odd" + bytes.fromhex("d10000" "00" "c0")
c.send_raw(struct.pack(">I", len(body)) + body)
# Section 3: kFlagRawPayload, bytes that are not a value-codec encoding.
c.send(sb.EVENT, 0, "py:raw", b"raw \xff bytes", flags=sb.FLAG_RAW_PAYLOAD)
c.send(sb.EVENT, 0, "py:ready", sb.encode_value(me))

# The Node.js side answers py:ready with two events and two invokes (served inside expect()).
progress = expect(lambda e: e.kind == sb.EVENT and e.topic == "job:progress", "job:progress")
capture("event-received", progress)
check(progress.sender == 1, f"an event from the hub's own process has sender 1, got {progress.sender}")
check(progress.id == 0 and progress.flags == 0, "EVENT id and flags")
check(sb.decode_value(progress.payload) == {"id": "a", "percent": 5}, "job:progress payload")

values = expect(lambda e: e.kind == sb.EVENT and e.topic == "job:values", "job:values")
v = sb.decode_value(values.payload)
check(v["date"] == sb.JsDate(1700000000000.0), f"Date {v['date']!r}")
check(v["big"] == sb.BigInt(-(2**64)) and v["small"] == sb.BigInt(5), f"BigInt {v['big']!r}")
check(v["bytes"] == b"\x01\x02\x03" and type(v["bytes"]) is bytes, f"Uint8Array {v['bytes']!r}")
check(v["buf"] == sb.JsBuffer(b"\x04\x05"), f"Buffer {v['buf']!r}")
check(v["undef"] is sb.UNDEFINED and v["nan"] != v["nan"], "undefined and NaN")

# Invokes of Node.js handlers.
added = request(sb.INVOKE, 4, "node:add", sb.encode_value({"a": 2, "b": 3}))
capture("result-received", added)
check(added.kind == sb.RESULT and added.sender == 1 and added.flags == 0, f"RESULT {added!r}")
check(added.topic == "", "the Node.js callee's RESULT topic is empty")
check(sb.decode_value(added.payload) == 5, "2 + 3")

got = request(sb.INVOKE, 5, "node:values", sb.encode_value(None))
check(got.kind == sb.RESULT, f"node:values {got!r}")
r = sb.decode_value(got.payload)
check(r["date"] == sb.JsDate(0.0) and r["big"] == sb.BigInt(2**70), f"node:values {r!r}")
check(r["bytes"] == b"\xde\xad" and r["buf"] == sb.JsBuffer(b"hi"), f"node:values {r!r}")

failed = request(sb.INVOKE, 6, "node:fail", sb.encode_value({"why": "quota"}))
check(failed.kind == sb.ERROR and not failed.flags & sb.FLAG_FROM_HUB, f"remote ERROR {failed!r}")
check(failed.sender == 1 and failed.topic == "RangeError", f"remote ERROR {failed!r}")
err = sb.decode_value(failed.payload)
check(isinstance(err, sb.JsError), f"remote ERROR payload {err!r}")
check(err.fields["name"] == "RangeError" and err.fields["message"] == "quota exceeded", repr(err))
check(err.fields["code"] == "E_QUOTA" and err.fields["props"] == {"limit": 3}, repr(err))

nobody = request(sb.INVOKE, 7, "app:version")
capture("error-no-handler", nobody)
check(nobody.kind == sb.ERROR and nobody.flags == sb.FLAG_FROM_HUB and nobody.sender == 0, repr(nobody))
check(nobody.topic == "E_NO_HANDLER", repr(nobody))
check(sb.decode_value(nobody.payload) == "no handler is registered for 'app:version'", "message")

# Both invokes from Node.js must have been served before this client leaves.
while served.get("py:echo", 0) < 1 or served.get("py:fail", 0) < 1:
    env = c.recv()
    if env.kind == sb.INVOKE:
        serve(env)
    elif env.kind != sb.PING:
        inbox.append(env)

# Section 5.3: a wrong token.
goaway = sb.refused(endpoint, "b" * 64)
capture("goaway-auth", goaway)
check(goaway.kind == sb.GOAWAY and goaway.topic == "E_AUTH", repr(goaway))

c.close()
say(done=True, peer=me, left=[repr(e) for e in inbox])

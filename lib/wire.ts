// The wire format on the JavaScript side: frames (4-byte big-endian length + msgpack envelope)
// and the envelope's seven fields, exactly as docs/PROTOCOL.md and core/envelope.h define them.
// Envelopes are written straight into the turn's batch buffer; the payload is encoded in place
// as a bin32 whose length is patched afterwards, so no payload is copied on the way out.
import { ByteReader, ByteWriter, StringCache } from './bytes.js';
import { writeString } from './codec.js';

export const PROTOCOL_VERSION = 1;

export const Kind = {
  hello: 1,
  welcome: 2,
  subscribe: 3,
  unsubscribe: 4,
  event: 5,
  register: 6,
  unregister: 7,
  invoke: 8,
  result: 9,
  error: 10,
  cancel: 11,
  ping: 12,
  pong: 13,
  goaway: 14,
  peer: 15,
  dropped: 48,
} as const;
export type KindValue = (typeof Kind)[keyof typeof Kind];

export const Flag = {
  /** The payload is raw bytes, not a msgpack value. */
  rawPayload: 1 << 0,
  /** On ERROR: raised by the hub (or locally by the client), not by a remote handler. */
  fromHub: 1 << 1,
} as const;

export interface Envelope {
  kind: number;
  id: number;
  topic: string;
  flags: number;
  sender: number;
  /** A view into the received batch (valid while the batch is being handled). */
  payload: Uint8Array;
}

function writeUint(w: ByteWriter, v: number): void {
  if (v < 0x80) w.u8(v);
  else if (v < 0x100) {
    w.u8(0xcc);
    w.u8(v);
  } else if (v < 0x10000) {
    w.u8(0xcd);
    w.u16(v);
  } else if (v < 0x100000000) {
    w.u8(0xce);
    w.u32(v);
  } else {
    w.u8(0xcf);
    w.u64(v);
  }
}

/**
 * Writes a frame's length prefix and envelope up to the payload, which the caller writes next
 * (raw bytes, or a value encoded in place) before calling endFrame(). Returns where the payload
 * starts. No closure or copy per frame: this is the emit path.
 */
export function beginFrame(w: ByteWriter, kind: number, id: number, topic: string, flags: number): number {
  w.u32(0); // frame length, patched by endFrame
  w.u8(0x97); // fixarray(7)
  w.u8(PROTOCOL_VERSION);
  w.u8(kind);
  if ((kind === Kind.invoke || kind === Kind.result || kind === Kind.error) && id <= 0xffffffff) {
    w.u8(0xce); // fixed width: the hub rewrites this id in place (core/envelope.h set_id)
    w.u32(id);
  } else {
    writeUint(w, id);
  }
  writeString(w, topic);
  writeUint(w, flags);
  w.u8(0xce); // sender: set by the hub, in place (a fixed uint32, see core/envelope.h set_sender)
  w.u32(0);
  w.u8(0xc6); // bin32, length patched by endFrame
  w.u32(0);
  return w.pos;
}

/** Patches the lengths of the frame that began at `start`; returns the frame's total size. */
export function endFrame(w: ByteWriter, start: number, payloadStart: number): number {
  w.view.setUint32(payloadStart - 4, w.pos - payloadStart);
  w.view.setUint32(start, w.pos - start - 4);
  return w.pos - start;
}

/** Writes one whole frame whose payload is `payload` (or none). */
export function writeFrame(w: ByteWriter, kind: number, id: number, topic: string, flags: number, payload: Uint8Array | null): number {
  const start = w.pos;
  const at = beginFrame(w, kind, id, topic, flags);
  if (payload) w.bytes(payload);
  return endFrame(w, start, at);
}

function readUint(r: ByteReader): number {
  const b = r.u8();
  if (b < 0x80) return b;
  switch (b) {
    case 0xcc:
      return r.u8();
    case 0xcd:
      return r.u16();
    case 0xce:
      return r.u32();
    case 0xcf:
      return r.u64();
    // The signed forms holding a non-negative value: the hub accepts them (core/envelope.cc) and
    // forwards the fields it does not rewrite as they came, so every receiver must accept them too.
    case 0xd0:
      return nonNegative(r.i8());
    case 0xd1:
      return nonNegative(r.i16());
    case 0xd2:
      return nonNegative(r.i32());
    case 0xd3:
      r.need(1);
      if (r.buf[r.pos] & 0x80) return nonNegative(-1);
      return r.u64();
    default:
      throw new RangeError(`envelope: expected an unsigned integer, got 0x${b.toString(16)}`);
  }
}

function nonNegative(v: number): number {
  if (v < 0) throw new RangeError(`envelope: expected an unsigned integer, got ${v}`);
  return v;
}

/** Any array header with a count of 7 (fixarray, array 16, array 32), as the hub accepts. */
function readArrayOfSeven(r: ByteReader): void {
  const b = r.u8();
  if (b === 0x97) return;
  const count = b === 0xdc ? r.u16() : b === 0xdd ? r.u32() : -1;
  if (count !== 7) throw new RangeError('envelope: expected an array of 7');
}

// A process reads the same few topics over and over.
const topics = new StringCache(256);

function readStr(r: ByteReader): string {
  const b = r.u8();
  let n: number;
  if ((b & 0xe0) === 0xa0) n = b & 0x1f;
  else if (b === 0xd9) n = r.u8();
  else if (b === 0xda) n = r.u16();
  else if (b === 0xdb) n = r.u32();
  else throw new RangeError(`envelope: expected a string, got 0x${b.toString(16)}`);
  r.need(n);
  const s = topics.get(r.buf, r.pos, n);
  r.pos += n;
  return s;
}

function readBin(r: ByteReader): Uint8Array {
  const b = r.u8();
  switch (b) {
    case 0xc0:
      return new Uint8Array(0);
    case 0xc4:
      return r.take(r.u8());
    case 0xc5:
      return r.take(r.u16());
    case 0xc6:
      return r.take(r.u32());
    default:
      throw new RangeError(`envelope: expected bin, got 0x${b.toString(16)}`);
  }
}

/** Calls `fn` for each envelope of a batch of whole frames. Throws on a malformed frame. */
export function readFrames(batch: Uint8Array, fn: (env: Envelope) => void): void {
  // One reader for the whole batch, its end narrowed to each frame in turn: a reader per frame
  // cost a DataView per event.
  const r = new ByteReader(batch);
  const total = r.end;
  while (r.pos < total) {
    const length = r.u32();
    r.need(length);
    const end = r.pos + length;
    r.end = end;
    if (r.pos < end && r.buf[r.pos] === 0x97) r.pos++;
    else readArrayOfSeven(r);
    const version = readUint(r);
    if (version !== PROTOCOL_VERSION) throw new RangeError(`envelope: version ${version}`);
    const env: Envelope = {
      kind: readUint(r),
      id: readUint(r),
      topic: readStr(r),
      flags: readUint(r),
      sender: readUint(r),
      payload: readBin(r),
    };
    if (r.pos !== end) throw new RangeError('envelope: trailing bytes');
    r.end = total;
    fn(env);
  }
}

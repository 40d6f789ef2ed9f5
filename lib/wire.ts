// The wire format on the JavaScript side: frames (4-byte big-endian length + msgpack envelope)
// and the envelope's seven fields, exactly as docs/PROTOCOL.md and core/envelope.h define them.
// Envelopes are written straight into the turn's batch buffer; the payload is encoded in place
// as a bin32 whose length is patched afterwards, so no payload is copied on the way out.
import { ByteReader, ByteWriter } from './bytes.js';

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

function writeStr(w: ByteWriter, s: string): void {
  // Reserve the widest header we might need, write the bytes, then settle the header size.
  if (s.length < 32) {
    const at = w.pos;
    w.u8(0xa0);
    const n = w.utf8(s);
    if (n < 32) {
      w.buf[at] = 0xa0 | n;
      return;
    }
    // Rare: a short string with many multi-byte characters. Redo it with a str8/str16 header.
    w.pos = at;
  }
  const bytes = new TextEncoder().encode(s);
  if (bytes.length < 32) w.u8(0xa0 | bytes.length);
  else if (bytes.length < 0x100) {
    w.u8(0xd9);
    w.u8(bytes.length);
  } else if (bytes.length < 0x10000) {
    w.u8(0xda);
    w.u16(bytes.length);
  } else {
    w.u8(0xdb);
    w.u32(bytes.length);
  }
  w.bytes(bytes);
}

/**
 * Writes one frame: header, envelope and payload. `payload` either writes the payload's bytes
 * into `w` (the value codec) or is a ready Uint8Array. Returns the frame's total size.
 */
export function writeFrame(
  w: ByteWriter,
  kind: number,
  id: number,
  topic: string,
  flags: number,
  payload: ((w: ByteWriter) => void) | Uint8Array | null,
): number {
  const start = w.pos;
  w.u32(0); // frame length, patched below
  w.u8(0x97); // fixarray(7)
  w.u8(PROTOCOL_VERSION);
  w.u8(kind);
  writeUint(w, id);
  writeStr(w, topic);
  writeUint(w, flags);
  w.u8(0xce); // sender: set by the hub, in place (a fixed uint32, see core/envelope.h set_sender)
  w.u32(0);
  w.u8(0xc6); // bin32, length patched below
  const binAt = w.pos;
  w.u32(0);
  const payloadStart = w.pos;
  if (payload instanceof Uint8Array) w.bytes(payload);
  else if (payload) payload(w);
  w.view.setUint32(binAt, w.pos - payloadStart);
  w.view.setUint32(start, w.pos - start - 4);
  return w.pos - start;
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
    default:
      throw new RangeError(`envelope: expected an unsigned integer, got 0x${b.toString(16)}`);
  }
}

function readStr(r: ByteReader): string {
  const b = r.u8();
  if ((b & 0xe0) === 0xa0) return r.utf8(b & 0x1f);
  switch (b) {
    case 0xd9:
      return r.utf8(r.u8());
    case 0xda:
      return r.utf8(r.u16());
    case 0xdb:
      return r.utf8(r.u32());
    default:
      throw new RangeError(`envelope: expected a string, got 0x${b.toString(16)}`);
  }
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
  const r = new ByteReader(batch);
  while (r.remaining() > 0) {
    const length = r.u32();
    r.need(length);
    const end = r.pos + length;
    const body = new ByteReader(batch, r.pos, end);
    if (body.u8() !== 0x97) throw new RangeError('envelope: expected an array of 7');
    const version = readUint(body);
    if (version !== PROTOCOL_VERSION) throw new RangeError(`envelope: version ${version}`);
    const env: Envelope = {
      kind: readUint(body),
      id: readUint(body),
      topic: readStr(body),
      flags: readUint(body),
      sender: readUint(body),
      payload: readBin(body),
    };
    if (body.pos !== end) throw new RangeError('envelope: trailing bytes');
    r.pos = end;
    fn(env);
  }
}

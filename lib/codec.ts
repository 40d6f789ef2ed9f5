// The value codec: one JavaScript value <-> one standard msgpack value, with Switchboard's ext
// types for what msgpack lacks (docs/PROTOCOL.md section 10 is the normative layout; the shared
// vectors in test/vectors/ pin every byte). Payloads are written in place into the turn's batch
// buffer (lib/wire.ts calls encodeValue), so encoding never builds an intermediate buffer.
//
// What crosses, and what it becomes on the other side (compare structured clone):
// - Plain objects and class instances become plain objects of their own enumerable string keys
//   (the prototype, symbol keys and non-enumerable properties are lost, as with structured clone).
//   Boxed primitives (new Number(1), new String('a'), ...) cross as their primitive value.
// - Strings are UTF-8. A lone surrogate cannot be written in UTF-8: it becomes U+FFFD, exactly as
//   TextEncoder does. Invalid UTF-8 from a peer is not an error either: each bad sequence decodes
//   to U+FFFD (TextDecoder without `fatal`).
// - Maps with a key that is not a string still decode to an object, under String(key): 1 becomes
//   "1", null "null". `__proto__`, `constructor` and `prototype` keys become own data properties
//   (Object.defineProperty), so a peer can never reach or replace a prototype.
// - Errors keep name, message, stack, code, cause, own enumerable properties and, for
//   AggregateError, errors. Only the built-in classes are rebuilt by class name (TypeError,
//   RangeError, ...); any other class (a user subclass, DOMException) decodes as a plain Error
//   whose `name` is the sender's, with the sender's class in a non-enumerable `remoteClass` and
//   in the stack's first line. The decoder never calls a constructor named by the peer.
// - Bytes are copied once, with one `set`, on both sides: a decoded Uint8Array, typed array or
//   ArrayBuffer owns its memory and never aliases the received batch. A view over a
//   SharedArrayBuffer crosses as a copy of its bytes, like any view; the SharedArrayBuffer itself
//   is refused, because a copy of it would silently stop being shared.
//
// Refused (CodecError E_UNSERIALIZABLE, naming the path of the bad value): functions, symbols,
// WeakMap, WeakSet, WeakRef, FinalizationRegistry, Promise, SharedArrayBuffer, cycles, and
// nesting deeper than DEFAULT_DECODE_LIMITS.maxDepth (the receiver would refuse it).
//
// Paths in messages: `.name` or `["odd key"]` for properties, `[3]` for array elements,
// `.get("key")` for a Map value (`.get(<key 2>)` when the key is an object), `.keys()[2]` for a
// Map key, `.values()[2]` for a Set element. An Error's own properties are named as on the Error.
//
// The encoder keeps its bookkeeping (the chain of containers being written) in module-level arrays
// instead of closures or per-call objects: this is the hot path of every emit. Getters run during
// encoding may call encodeValue again; that nested call gets fresh arrays.
import { ByteReader, ByteWriter } from './bytes.js';
import { withClassHeader } from './error-header.js';

export interface DecodeLimits {
  /** Containers (array, map, and the ext types that hold values) nested deeper than this fail. */
  maxDepth: number;
  /** At most this many values in total (every array element, map key and map value counts). */
  maxNodes: number;
  /** Inputs longer than this fail before any decoding. */
  maxBytes?: number;
}

export const DEFAULT_DECODE_LIMITS: DecodeLimits = Object.freeze({
  maxDepth: 64,
  maxNodes: 1_000_000,
});

export class CodecError extends Error {
  code: 'E_UNSERIALIZABLE' | 'E_DECODE';
  /** Where the bad value is (`payload.items[3].fn`) when encoding; '' when decoding. */
  path: string;

  constructor(code: 'E_UNSERIALIZABLE' | 'E_DECODE', message: string, path = '') {
    super(message);
    this.code = code;
    this.path = path;
  }
}
Object.defineProperty(CodecError.prototype, 'name', {
  value: 'CodecError',
  writable: true,
  configurable: true,
});

// --- Ext types (docs/PROTOCOL.md section 10.2). ------------------------------------------------

const EXT_UNDEFINED = 1;
const EXT_DATE = 2;
const EXT_BIGINT = 3;
const EXT_ERROR = 4;
const EXT_MAP = 5;
const EXT_SET = 6;
const EXT_REGEXP = 7;
const EXT_TYPED_ARRAY = 8;
const EXT_ARRAY_BUFFER = 9;
const EXT_BUFFER = 10;
const EXT_TIMESTAMP = -1; // the msgpack specification's timestamp (decoded, never written)

type TypedArrayConstructor =
  | Int8ArrayConstructor
  | Uint8ClampedArrayConstructor
  | Int16ArrayConstructor
  | Uint16ArrayConstructor
  | Int32ArrayConstructor
  | Uint32ArrayConstructor
  | Float32ArrayConstructor
  | Float64ArrayConstructor
  | BigInt64ArrayConstructor
  | BigUint64ArrayConstructor;

/** Element tags of ext 8, indexed by tag (0 unused; 11 is DataView, handled apart). */
const TYPED_ARRAYS: (TypedArrayConstructor | undefined)[] = [
  undefined,
  Int8Array,
  Uint8ClampedArray,
  Int16Array,
  Uint16Array,
  Int32Array,
  Uint32Array,
  Float32Array,
  Float64Array,
  BigInt64Array,
  BigUint64Array,
];
const TAG_DATA_VIEW = 11;
const TYPED_ARRAY_TAGS = new Map<string, number>(
  TYPED_ARRAYS.map((c, i) => [c ? c.name : '', i] as [string, number]).filter(([n]) => n !== ''),
);
// %TypedArray%.prototype[Symbol.toStringTag] names the element type of any typed array, even of a
// subclass that overrides its own toStringTag.
const typedArrayKind = Object.getOwnPropertyDescriptor(
  Object.getPrototypeOf(Int8Array.prototype),
  Symbol.toStringTag,
)!.get as (this: ArrayBufferView) => string | undefined;

// Typed arrays travel little-endian. On a big-endian host the elements are byte-swapped on the
// way in and out (no supported platform is big-endian today; the path keeps the format fixed).
const BIG_ENDIAN_HOST = new Uint8Array(new Uint16Array([1]).buffer)[0] === 0;

function swapBytes(b: Uint8Array, start: number, end: number, size: number): void {
  for (let i = start; i + size <= end; i += size) {
    for (let lo = i, hi = i + size - 1; lo < hi; lo++, hi--) {
      const t = b[lo];
      b[lo] = b[hi];
      b[hi] = t;
    }
  }
}

interface NodeBufferConstructor {
  new (...args: never[]): Uint8Array;
  from(ab: ArrayBuffer, byteOffset: number, length: number): Uint8Array;
}
// Node.js Buffer where it exists (not in a sandboxed renderer): written as ext 10, decoded as one.
const NodeBuffer = (globalThis as { Buffer?: NodeBufferConstructor }).Buffer;

const textEncoder = new TextEncoder();
const textDecoder = new TextDecoder('utf-8', { fatal: false });

// --- Encoder. ------------------------------------------------------------------------------------

const MAX_ENCODE_DEPTH = DEFAULT_DECODE_LIMITS.maxDepth;

// How a child is named in a path, per container level.
const KIND_PROP = 0; // keys[d] is a property name
const KIND_INDEX = 1; // keys[d] is an array index
const KIND_MAP_KEY = 2; // keys[d] is the entry's position
const KIND_MAP_VALUE = 3; // keys[d] is the Map key, aux[d] its position
const KIND_SET = 4; // keys[d] is the element's position
const KIND_NONE = 5; // a level of the wire format the user does not see (an Error's props map)

// While a container at depth d (0-based) is being written, parents[d] is the container and
// kinds[d]/keys[d]/aux[d] name the child being written. Only entries below the current depth are
// meaningful.
let parents: unknown[] = [];
let kinds: number[] = [];
let keys: unknown[] = [];
let aux: number[] = [];
let rootName = 'payload';
// Replaces '%s' in rootName: callers pass the topic apart so that no message string is built
// per call, only when a value is refused.
let rootSubject: string | undefined;
let encoding = false;

const IDENTIFIER = /^[A-Za-z_$][\w$]*$/;

function segment(d: number): string {
  const k = keys[d];
  switch (kinds[d]) {
    case KIND_PROP:
      return IDENTIFIER.test(k as string) ? '.' + (k as string) : `[${JSON.stringify(k)}]`;
    case KIND_INDEX:
      return `[${k as number}]`;
    case KIND_MAP_KEY:
      return `.keys()[${k as number}]`;
    case KIND_MAP_VALUE:
      return `.get(${describeKey(k, aux[d])})`;
    case KIND_SET:
      return `.values()[${k as number}]`;
    default:
      return '';
  }
}

function describeKey(k: unknown, position: number): string {
  switch (typeof k) {
    case 'string':
      return JSON.stringify(k);
    case 'number':
    case 'boolean':
    case 'undefined':
      return String(k);
    case 'bigint':
      return `${k}n`;
    default:
      return k === null ? 'null' : `<key ${position}>`;
  }
}

function pathAt(depth: number): string {
  let p = rootSubject === undefined ? rootName : rootName.split('%s').join(rootSubject);
  for (let d = 0; d < depth; d++) p += segment(d);
  return p;
}

function refuse(depth: number, what: string): CodecError {
  const path = pathAt(depth);
  return new CodecError('E_UNSERIALIZABLE', `${path} ${what}`, path);
}

/** Writes `value` as one msgpack value at `w.pos`. On failure `w.pos` is back where it was. */
export function encodeValue(w: ByteWriter, value: unknown, root = 'payload', subject?: string): void {
  const start = w.pos;
  const outer = encoding ? { parents, kinds, keys, aux, rootName, rootSubject } : null;
  if (outer) {
    parents = [];
    kinds = [];
    keys = [];
    aux = [];
  }
  encoding = true;
  rootName = root;
  rootSubject = subject;
  try {
    writeAny(w, value, 0);
  } catch (e) {
    w.pos = start;
    parents.fill(undefined); // hold on to nothing of the caller's
    keys.fill(undefined);
    throw e;
  } finally {
    if (outer) {
      ({ parents, kinds, keys, aux, rootName, rootSubject } = outer);
    } else {
      encoding = false;
    }
  }
}

// encode()'s working buffer: growing a fresh writer from a few bytes costs more than the encoding
// for anything but tiny values, so one writer is kept, and dropped again once it grew past
// SCRATCH_MAX_BYTES (memory is not held for one big value). A nested call gets its own writer.
const SCRATCH_MAX_BYTES = 1 << 20;
let scratch: ByteWriter | null = null;

/** Encodes `value` into a new Uint8Array of exactly its size (a copy, owned by the caller). */
export function encode(value: unknown): Uint8Array {
  const w = scratch ?? new ByteWriter(4096);
  scratch = null; // taken: a nested encode() (from a getter) allocates its own
  w.reset();
  try {
    encodeValue(w, value);
    return w.buf.slice(0, w.pos);
  } finally {
    if (w.buf.length <= SCRATCH_MAX_BYTES) scratch = w;
  }
}

function writeAny(w: ByteWriter, v: unknown, depth: number): void {
  switch (typeof v) {
    case 'string':
      writeString(w, v);
      return;
    case 'number':
      writeNumber(w, v);
      return;
    case 'boolean':
      w.u8(v ? 0xc3 : 0xc2);
      return;
    case 'object':
      if (v === null) w.u8(0xc0);
      else writeObject(w, v, depth);
      return;
    case 'undefined':
      w.ensure(3);
      w.buf[w.pos] = 0xc7;
      w.buf[w.pos + 1] = 0;
      w.buf[w.pos + 2] = EXT_UNDEFINED;
      w.pos += 3;
      return;
    case 'bigint':
      writeBigInt(w, v);
      return;
    case 'function':
      throw refuse(depth, 'is a function; functions cannot cross processes');
    default:
      throw refuse(depth, 'is a symbol; symbols cannot cross processes');
  }
}

function writeNumber(w: ByteWriter, v: number): void {
  if (Number.isSafeInteger(v) && (v !== 0 || 1 / v > 0)) writeInt(w, v);
  else {
    w.ensure(9);
    w.buf[w.pos] = 0xcb;
    w.view.setFloat64(w.pos + 1, v);
    w.pos += 9;
  }
}

// Stores into a Uint8Array keep the low 8 bits, so `buf[p] = v >> 8` writes one byte of v.
function writeInt(w: ByteWriter, v: number): void {
  w.ensure(9);
  const buf = w.buf;
  let p = w.pos;
  if (v >= 0) {
    if (v < 0x80) buf[p++] = v;
    else if (v < 0x100) {
      buf[p++] = 0xcc;
      buf[p++] = v;
    } else if (v < 0x10000) {
      buf[p++] = 0xcd;
      buf[p++] = v >>> 8;
      buf[p++] = v;
    } else if (v < 0x100000000) {
      buf[p++] = 0xce;
      buf[p++] = v >>> 24;
      buf[p++] = v >>> 16;
      buf[p++] = v >>> 8;
      buf[p++] = v;
    } else {
      const hi = Math.floor(v / 0x100000000);
      const lo = v >>> 0;
      buf[p++] = 0xcf;
      buf[p++] = hi >>> 24;
      buf[p++] = hi >>> 16;
      buf[p++] = hi >>> 8;
      buf[p++] = hi;
      buf[p++] = lo >>> 24;
      buf[p++] = lo >>> 16;
      buf[p++] = lo >>> 8;
      buf[p++] = lo;
    }
  } else if (v >= -0x20) {
    buf[p++] = v;
  } else if (v >= -0x80) {
    buf[p++] = 0xd0;
    buf[p++] = v;
  } else if (v >= -0x8000) {
    buf[p++] = 0xd1;
    buf[p++] = v >> 8;
    buf[p++] = v;
  } else if (v >= -0x80000000) {
    buf[p++] = 0xd2;
    buf[p++] = v >> 24;
    buf[p++] = v >> 16;
    buf[p++] = v >> 8;
    buf[p++] = v;
  } else {
    const hi = Math.floor(v / 0x100000000); // >= -2^21: fits an int32
    const lo = v >>> 0; // ToUint32 is v modulo 2^32, the low word of the two's complement
    buf[p++] = 0xd3;
    buf[p++] = hi >> 24;
    buf[p++] = hi >> 16;
    buf[p++] = hi >> 8;
    buf[p++] = hi;
    buf[p++] = lo >>> 24;
    buf[p++] = lo >>> 16;
    buf[p++] = lo >>> 8;
    buf[p++] = lo;
  }
  w.pos = p;
}

/**
 * UTF-8 of s[i..] at buf[p..]; returns the end. The caller reserved 3 bytes per UTF-16 unit. A
 * lone surrogate becomes U+FFFD (EF BF BD), as TextEncoder does.
 */
function utf8Into(buf: Uint8Array, p: number, s: string, i: number): number {
  const len = s.length;
  for (; i < len; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x80) buf[p++] = c;
    else if (c < 0x800) {
      buf[p++] = 0xc0 | (c >> 6);
      buf[p++] = 0x80 | (c & 0x3f);
    } else if (c < 0xd800 || c > 0xdfff) {
      buf[p++] = 0xe0 | (c >> 12);
      buf[p++] = 0x80 | ((c >> 6) & 0x3f);
      buf[p++] = 0x80 | (c & 0x3f);
    } else {
      const d = c < 0xdc00 && i + 1 < len ? s.charCodeAt(i + 1) : 0;
      if (d >= 0xdc00 && d <= 0xdfff) {
        const cp = 0x10000 + ((c - 0xd800) << 10) + (d - 0xdc00);
        buf[p++] = 0xf0 | (cp >> 18);
        buf[p++] = 0x80 | ((cp >> 12) & 0x3f);
        buf[p++] = 0x80 | ((cp >> 6) & 0x3f);
        buf[p++] = 0x80 | (cp & 0x3f);
        i++;
      } else {
        buf[p++] = 0xef;
        buf[p++] = 0xbf;
        buf[p++] = 0xbd;
      }
    }
  }
  return p;
}

// Strings shorter than this are encoded by utf8Into; longer ones by TextEncoder.encodeInto, whose
// per-call cost only pays off on long strings.
const MANUAL_UTF8_MAX = 256;

export function writeString(w: ByteWriter, s: string): void {
  const len = s.length;
  if (len < 32) {
    // Most strings (keys, short values) are short ASCII: fixstr, one pass, no size guess.
    w.ensure(2 + len * 3);
    const buf = w.buf;
    const start = w.pos;
    let p = start + 1;
    let i = 0;
    for (; i < len; i++) {
      const c = s.charCodeAt(i);
      if (c >= 0x80) break;
      buf[p++] = c;
    }
    if (i < len) p = utf8Into(buf, p, s, i);
    const n = p - start - 1;
    if (n < 32) {
      buf[start] = 0xa0 | n;
      w.pos = p;
    } else {
      // At most 93 bytes: str8. Move the bytes one to the right for the longer header.
      buf.copyWithin(start + 2, start + 1, p);
      buf[start] = 0xd9;
      buf[start + 1] = n;
      w.pos = p + 1;
    }
    return;
  }
  // The UTF-8 size is between len and 3 * len bytes: reserve the header for the largest, write,
  // then move the bytes left if a smaller header fits (msgpack wants the smallest).
  const max = len * 3;
  const reserved = max < 0x100 ? 2 : max < 0x10000 ? 3 : 5;
  w.ensure(reserved + max);
  const buf = w.buf;
  const start = w.pos;
  const n =
    len < MANUAL_UTF8_MAX
      ? utf8Into(buf, start + reserved, s, 0) - start - reserved
      : textEncoder.encodeInto(s, buf.subarray(start + reserved)).written;
  const header = n < 0x100 ? 2 : n < 0x10000 ? 3 : 5;
  if (header < reserved) buf.copyWithin(start + header, start + reserved, start + reserved + n);
  if (header === 2) {
    buf[start] = 0xd9;
    buf[start + 1] = n;
  } else if (header === 3) {
    buf[start] = 0xda;
    buf[start + 1] = n >>> 8;
    buf[start + 2] = n;
  } else {
    buf[start] = 0xdb;
    w.view.setUint32(start + 1, n);
  }
  w.pos = start + header + n;
}

function writeArrayHeader(w: ByteWriter, n: number): void {
  if (n < 16) w.u8(0x90 | n);
  else if (n < 0x10000) {
    w.u8(0xdc);
    w.u16(n);
  } else {
    w.u8(0xdd);
    w.u32(n);
  }
}

function writeMapHeader(w: ByteWriter, n: number): void {
  if (n < 16) w.u8(0x80 | n);
  else if (n < 0x10000) {
    w.u8(0xde);
    w.u16(n);
  } else {
    w.u8(0xdf);
    w.u32(n);
  }
}

function writeBinHeader(w: ByteWriter, n: number): void {
  if (n < 0x100) {
    w.u8(0xc4);
    w.u8(n);
  } else if (n < 0x10000) {
    w.u8(0xc5);
    w.u16(n);
  } else {
    w.u8(0xc6);
    w.u32(n);
  }
}

/** The smallest ext header for `n` bytes of data: fixext 1/2/4/8/16, else ext 8/16/32. */
function writeExtHeader(w: ByteWriter, type: number, n: number): void {
  w.ensure(6);
  const buf = w.buf;
  let p = w.pos;
  switch (n) {
    case 1:
      buf[p++] = 0xd4;
      break;
    case 2:
      buf[p++] = 0xd5;
      break;
    case 4:
      buf[p++] = 0xd6;
      break;
    case 8:
      buf[p++] = 0xd7;
      break;
    case 16:
      buf[p++] = 0xd8;
      break;
    default:
      if (n < 0x100) {
        buf[p++] = 0xc7;
        buf[p++] = n;
      } else if (n < 0x10000) {
        buf[p++] = 0xc8;
        buf[p++] = n >>> 8;
        buf[p++] = n;
      } else {
        buf[p++] = 0xc9;
        w.view.setUint32(p, n);
        p += 4;
      }
  }
  buf[p++] = type;
  w.pos = p;
}

/** Reserves room for the largest ext header before data whose size is not known yet. */
function beginExt(w: ByteWriter): number {
  w.ensure(6);
  const at = w.pos;
  w.pos += 6;
  return at;
}

/** Writes the smallest header for the data written since beginExt, moving the data left. */
function endExt(w: ByteWriter, at: number, type: number): void {
  const dataStart = at + 6;
  const n = w.pos - dataStart;
  w.pos = at;
  writeExtHeader(w, type, n);
  const header = w.pos - at;
  if (header < 6) w.buf.copyWithin(at + header, dataStart, dataStart + n);
  w.pos = at + header + n;
}

function writeBigInt(w: ByteWriter, v: bigint): void {
  const negative = v < 0n;
  const magnitude = negative ? -v : v;
  if (magnitude === 0n) {
    writeExtHeader(w, EXT_BIGINT, 1);
    w.u8(0);
    return;
  }
  let hex = magnitude.toString(16);
  if (hex.length & 1) hex = '0' + hex;
  const n = hex.length >> 1;
  writeExtHeader(w, EXT_BIGINT, 1 + n);
  w.ensure(1 + n);
  const buf = w.buf;
  let p = w.pos;
  buf[p++] = negative ? 1 : 0;
  for (let i = 0; i < n; i++) buf[p++] = parseInt(hex.substr(i * 2, 2), 16);
  w.pos = p;
}

function writeRaw(w: ByteWriter, view: ArrayBufferView): void {
  w.bytes(new Uint8Array(view.buffer, view.byteOffset, view.byteLength));
}

/** Checks the depth and the cycle before writing a container at `depth`. */
function enter(o: object, depth: number): void {
  if (depth >= MAX_ENCODE_DEPTH) {
    throw refuse(
      depth,
      `is nested deeper than ${MAX_ENCODE_DEPTH} levels; receivers refuse that ` +
        '(DecodeLimits.maxDepth)',
    );
  }
  for (let d = 0; d < depth; d++) {
    if (parents[d] === o) {
      const path = pathAt(depth);
      throw new CodecError(
        'E_UNSERIALIZABLE',
        `${path} refers back to ${pathAt(d)} (a cycle)`,
        path,
      );
    }
  }
  parents[depth] = o;
}

function writeObject(w: ByteWriter, o: object, depth: number): void {
  if (Array.isArray(o)) {
    writeArray(w, o, depth);
    return;
  }
  const proto = Object.getPrototypeOf(o);
  if (proto === Object.prototype || proto === null) {
    writePlain(w, o as Record<string, unknown>, depth);
    return;
  }
  if (ArrayBuffer.isView(o)) writeView(w, o, depth);
  else if (o instanceof Date) writeDate(w, o.getTime());
  else if (o instanceof Map) writeMap(w, o, depth);
  else if (o instanceof Set) writeSet(w, o, depth);
  else if (o instanceof Error) writeError(w, o, depth);
  else if (o instanceof RegExp) {
    enter(o, depth);
    const at = beginExt(w);
    w.u8(0x92);
    writeString(w, o.source);
    writeString(w, o.flags);
    endExt(w, at, EXT_REGEXP);
    parents[depth] = undefined;
  } else if (o instanceof ArrayBuffer) {
    writeExtHeader(w, EXT_ARRAY_BUFFER, o.byteLength);
    w.bytes(new Uint8Array(o));
  } else if (typeof SharedArrayBuffer !== 'undefined' && o instanceof SharedArrayBuffer) {
    throw refuse(
      depth,
      'is a SharedArrayBuffer; shared memory cannot cross processes (a copy would silently stop ' +
        'being shared): copy its bytes into an ArrayBuffer or a Uint8Array to send them',
    );
  } else if (o instanceof Promise) {
    throw refuse(depth, 'is a Promise; promises cannot cross processes (send the awaited value)');
  } else if (o instanceof WeakMap || o instanceof WeakSet) {
    const name = o instanceof WeakMap ? 'WeakMap' : 'WeakSet';
    throw refuse(
      depth,
      `is a ${name}; ${name}s cannot cross processes (their entries cannot be listed)`,
    );
  } else if (o instanceof WeakRef || o instanceof FinalizationRegistry) {
    const name = o instanceof WeakRef ? 'WeakRef' : 'FinalizationRegistry';
    throw refuse(depth, `is a ${name}; garbage-collector handles cannot cross processes`);
  } else if (o instanceof Number || o instanceof String || o instanceof Boolean) {
    writeAny(w, o.valueOf(), depth);
  } else if (o instanceof BigInt) {
    writeBigInt(w, (o as { valueOf(): bigint }).valueOf());
  } else if (o instanceof Symbol) {
    throw refuse(depth, 'is a symbol; symbols cannot cross processes');
  } else if (!writeForeign(w, o, depth)) {
    // A class instance: its own enumerable properties, like structured clone.
    writePlain(w, o as Record<string, unknown>, depth);
  }
}

function writeDate(w: ByteWriter, time: number): void {
  w.ensure(10);
  w.buf[w.pos] = 0xd7;
  w.buf[w.pos + 1] = EXT_DATE;
  w.view.setFloat64(w.pos + 2, time);
  w.pos += 10;
}

const getTime = Date.prototype.getTime;
const mapHas = Map.prototype.has;
const setHas = Set.prototype.has;
const arrayBufferByteLength = Object.getOwnPropertyDescriptor(ArrayBuffer.prototype, 'byteLength')!
  .get as (this: ArrayBuffer) => number;

/**
 * A built-in from another realm (a vm context) fails instanceof, but its brand shows through
 * Object.prototype.toString; the brand checks of Date, ArrayBuffer, Map and Set methods confirm
 * it (an object that only claims a Symbol.toStringTag stays a plain object). Returns false when
 * `o` is none of these.
 */
function writeForeign(w: ByteWriter, o: object, depth: number): boolean {
  const brand = Object.prototype.toString.call(o);
  try {
    switch (brand) {
      case '[object Map]':
        mapHas.call(o, undefined);
        break;
      case '[object Set]':
        setHas.call(o, undefined);
        break;
      case '[object Date]':
        writeDate(w, getTime.call(o));
        return true;
      case '[object ArrayBuffer]':
        writeExtHeader(w, EXT_ARRAY_BUFFER, arrayBufferByteLength.call(o as ArrayBuffer));
        w.bytes(new Uint8Array(o as ArrayBuffer));
        return true;
    }
  } catch {
    return false; // a claimed brand, not a real one
  }
  switch (brand) {
    case '[object Map]':
      writeMap(w, o as Map<unknown, unknown>, depth);
      return true;
    case '[object Set]':
      writeSet(w, o as Set<unknown>, depth);
      return true;
    case '[object Error]':
      writeError(w, o as Error, depth);
      return true;
    case '[object Promise]':
    case '[object WeakMap]':
    case '[object WeakSet]':
      throw refuse(depth, `is a ${brand.slice(8, -1)}; it cannot cross processes`);
    default:
      return false;
  }
}

function writeArray(w: ByteWriter, a: unknown[], depth: number): void {
  enter(a, depth);
  const n = a.length;
  writeArrayHeader(w, n);
  kinds[depth] = KIND_INDEX;
  // A hole reads as undefined, which is what it becomes.
  for (let i = 0; i < n; i++) {
    keys[depth] = i;
    writeAny(w, a[i], depth + 1);
  }
  parents[depth] = undefined;
}

function writePlain(w: ByteWriter, o: Record<string, unknown>, depth: number): void {
  enter(o, depth);
  const ks = Object.keys(o);
  const n = ks.length;
  writeMapHeader(w, n);
  kinds[depth] = KIND_PROP;
  for (let i = 0; i < n; i++) {
    const k = ks[i];
    keys[depth] = k;
    writeString(w, k);
    writeAny(w, o[k], depth + 1);
  }
  parents[depth] = undefined;
}

function writeMap(w: ByteWriter, m: Map<unknown, unknown>, depth: number): void {
  enter(m, depth);
  // A snapshot: a getter run while encoding could otherwise change the count under us.
  const entries = Array.from(m);
  const at = beginExt(w);
  writeArrayHeader(w, entries.length * 2);
  for (let i = 0; i < entries.length; i++) {
    const [k, v] = entries[i];
    kinds[depth] = KIND_MAP_KEY;
    keys[depth] = i;
    writeAny(w, k, depth + 1);
    kinds[depth] = KIND_MAP_VALUE;
    keys[depth] = k;
    aux[depth] = i;
    writeAny(w, v, depth + 1);
  }
  endExt(w, at, EXT_MAP);
  parents[depth] = undefined;
  keys[depth] = undefined; // may be an object key of the caller's
}

function writeSet(w: ByteWriter, s: Set<unknown>, depth: number): void {
  enter(s, depth);
  const values = Array.from(s);
  const at = beginExt(w);
  writeArrayHeader(w, values.length);
  kinds[depth] = KIND_SET;
  for (let i = 0; i < values.length; i++) {
    keys[depth] = i;
    writeAny(w, values[i], depth + 1);
  }
  endExt(w, at, EXT_SET);
  parents[depth] = undefined;
}

// Fields of the ext 4 map that are not "props".
const ERROR_FIELDS = new Set(['name', 'message', 'stack', 'code', 'cause']);

function writeError(w: ByteWriter, e: Error, depth: number): void {
  enter(e, depth);
  const stack = e.stack;
  const hasStack = typeof stack === 'string';
  const hasCode = 'code' in e;
  const hasCause = 'cause' in e;
  // An AggregateError, or what the decoder makes of an AggregateError subclass it cannot rebuild
  // (an Error with an own non-enumerable `errors` array): forwarding that must keep the errors.
  const errorsOwn = Object.getOwnPropertyDescriptor(e, 'errors');
  const hasErrors =
    e instanceof AggregateError ||
    (errorsOwn !== undefined && !errorsOwn.enumerable && Array.isArray(errorsOwn.value));
  const ctor = (Object.getPrototypeOf(e) as { constructor?: { name?: unknown } } | null)
    ?.constructor;
  // An Error decoded from a class that was not rebuilt (or a RemoteError) says which class it
  // came from: forwarding it keeps that class.
  const from = Object.getOwnPropertyDescriptor(e, 'remoteClass')?.value;
  const className =
    typeof from === 'string' && from !== ''
      ? from
      : typeof ctor?.name === 'string' && ctor.name !== ''
        ? ctor.name
        : 'Error';
  const props = Object.keys(e).filter((k) => !ERROR_FIELDS.has(k));
  const at = beginExt(w);
  writeMapHeader(
    w,
    3 + +hasStack + +hasCode + +hasCause + +hasErrors + (props.length > 0 ? 1 : 0),
  );
  writeString(w, 'name');
  writeString(w, String(e.name));
  writeString(w, 'message');
  writeString(w, String(e.message));
  if (hasStack) {
    writeString(w, 'stack');
    writeString(w, stack);
  }
  writeString(w, 'class');
  writeString(w, className);
  kinds[depth] = KIND_PROP;
  if (hasCode) {
    writeString(w, 'code');
    keys[depth] = 'code';
    writeAny(w, (e as { code?: unknown }).code, depth + 1);
  }
  if (hasCause) {
    writeString(w, 'cause');
    keys[depth] = 'cause';
    writeAny(w, e.cause, depth + 1);
  }
  if (hasErrors) {
    writeString(w, 'errors');
    keys[depth] = 'errors';
    writeAny(w, (e as AggregateError).errors, depth + 1);
  }
  if (props.length > 0) {
    writeString(w, 'props');
    // The props map is one level on the wire (and counts against the depth limit), but on the
    // Error the properties are the Error's own: name them so.
    kinds[depth] = KIND_NONE;
    if (depth + 1 >= MAX_ENCODE_DEPTH) enter(props, depth + 1); // throws the depth error
    parents[depth + 1] = undefined;
    writeMapHeader(w, props.length);
    kinds[depth + 1] = KIND_PROP;
    for (const k of props) {
      keys[depth + 1] = k;
      writeString(w, k);
      writeAny(w, (e as unknown as Record<string, unknown>)[k], depth + 2);
    }
  }
  endExt(w, at, EXT_ERROR);
  parents[depth] = undefined;
}

function writeView(w: ByteWriter, v: ArrayBufferView, depth: number): void {
  if (v instanceof Uint8Array) {
    if (NodeBuffer !== undefined && v instanceof NodeBuffer) {
      writeExtHeader(w, EXT_BUFFER, v.byteLength);
    } else {
      writeBinHeader(w, v.byteLength);
    }
    w.bytes(v);
    return;
  }
  const kind = v instanceof DataView ? 'DataView' : typedArrayKind.call(v);
  if (kind === 'Uint8Array') {
    // From another realm (a vm context), where instanceof fails.
    writeBinHeader(w, v.byteLength);
    writeRaw(w, v);
    return;
  }
  const tag = kind === 'DataView' ? TAG_DATA_VIEW : TYPED_ARRAY_TAGS.get(kind ?? '');
  if (tag === undefined) {
    // A typed array of a newer element type (Float16Array...): no tag is assigned to it yet.
    throw refuse(depth, `is a ${kind ?? 'view'}, which has no element tag (PROTOCOL.md 10.2)`);
  }
  writeExtHeader(w, EXT_TYPED_ARRAY, 1 + v.byteLength);
  w.u8(tag);
  const start = w.pos;
  writeRaw(w, v);
  if (BIG_ENDIAN_HOST && tag !== TAG_DATA_VIEW) {
    swapBytes(w.buf, start, w.pos, (v as Int16Array).BYTES_PER_ELEMENT);
  }
}

// --- Decoder. ------------------------------------------------------------------------------------

// The input being decoded and the budget left. Module-level like the encoder's state; decode()
// saves and restores all of it, so a nested decode (from code the decoder triggers) is safe.
// `rd` supplies the bytes, their DataView and the cursor; `end` bounds the current value (the
// input's end, or an ext's data end while its contents are read); `base` is the input's first
// byte in `rd`, so that offsets in messages count from the start of the input.
let rd = new ByteReader(new Uint8Array(0));
let end = 0;
let base = 0;
let maxDepth = DEFAULT_DECODE_LIMITS.maxDepth;
let maxNodes = DEFAULT_DECODE_LIMITS.maxNodes;
let nodesLeft = 0;

// Payloads arrive as views into one received batch, and creating a DataView costs about as much
// as decoding a small payload. So the reader of the last batch (its whole ArrayBuffer) is kept
// and reused while payloads of the same batch follow. Only batches up to this size are kept,
// to bound the memory held after decoding.
const READER_CACHE_MAX_BYTES = 1 << 20;
let cachedReader: ByteReader | null = null;
let cachedBuffer: ArrayBufferLike | null = null;
let cachedLength = 0;
/** Where the reader readerFor() returned starts in its ArrayBuffer (its Uint8Array's byteOffset). */
let readerOffset = 0;

// Between beginBatch() and endBatch() (the EventBus decoding one received batch) the reader is
// kept whatever the batch's size, and dropped at the end.
let batchDepth = 0;
// The memory of the received batches being decoded (innermost last): bulk bytes in them may be
// handed out as views (see bulkBytes). Only a buffer the addon made for one delivery belongs here.
const ownedBatches: ArrayBufferLike[] = [];
export function beginBatch(received?: Uint8Array): void {
  batchDepth++;
  if (received !== undefined) ownedBatches.push(received.buffer);
}
export function endBatch(received?: Uint8Array): void {
  if (received !== undefined) ownedBatches.pop();
  if (--batchDepth === 0) {
    cachedReader = null;
    cachedBuffer = null;
  }
}

function readerFor(bytes: Uint8Array): ByteReader {
  const ab = bytes.buffer;
  const length = ab.byteLength;
  // The cached reader's buffer and length are kept beside it: reading them back through its
  // Uint8Array costs two more getter calls per payload.
  if (ab === cachedBuffer && length === cachedLength) {
    readerOffset = 0;
    return cachedReader!;
  }
  if (length > READER_CACHE_MAX_BYTES && batchDepth === 0) {
    readerOffset = bytes.byteOffset;
    return new ByteReader(bytes);
  }
  readerOffset = 0;
  cachedBuffer = ab;
  cachedLength = length;
  return (cachedReader = new ByteReader(new Uint8Array(ab)));
}

function fail(message: string): CodecError {
  return new CodecError('E_DECODE', message);
}

function checkLimit(name: string, v: unknown, min: number): void {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < min) {
    throw new RangeError(
      `Expected the "${name}" limit to be an integer >= ${min}, got ${String(v)}`,
    );
  }
}

/**
 * Decodes exactly one value filling `bytes`. Throws CodecError E_DECODE on anything malformed,
 * over a limit, or followed by trailing bytes.
 */
export function decode(bytes: Uint8Array, limits: DecodeLimits = DEFAULT_DECODE_LIMITS): unknown {
  if (!(bytes instanceof Uint8Array)) {
    throw new TypeError('decode() expects a Uint8Array (a Buffer is one)');
  }
  if (limits !== DEFAULT_DECODE_LIMITS) {
    checkLimit('maxDepth', limits.maxDepth, 0);
    checkLimit('maxNodes', limits.maxNodes, 1);
    if (limits.maxBytes !== undefined) checkLimit('maxBytes', limits.maxBytes, 0);
  }
  if (limits.maxBytes !== undefined && bytes.length > limits.maxBytes) {
    throw fail(`input of ${bytes.length} bytes is over the limit of ${limits.maxBytes} (maxBytes)`);
  }
  const outerRd = rd;
  const outerPos = rd.pos;
  const outerEnd = end;
  const outerBase = base;
  const outerMaxDepth = maxDepth;
  const outerMaxNodes = maxNodes;
  const outerNodesLeft = nodesLeft;
  const r = readerFor(bytes);
  rd = r;
  base = bytes.byteOffset - readerOffset;
  end = base + bytes.length;
  r.pos = base;
  maxDepth = limits.maxDepth;
  maxNodes = limits.maxNodes;
  nodesLeft = limits.maxNodes - 1;
  try {
    const v = readAny(0);
    if (r.pos !== end) {
      throw fail(
        `${plural(end - r.pos, 'trailing byte')} after the value, at offset ${r.pos - base}`,
      );
    }
    return v;
  } catch (e) {
    // V8 throws a RangeError when a (raised) maxDepth lets the stack overflow, or a BigInt is
    // over its size limit: bad input too.
    if (e instanceof RangeError) throw fail(e.message);
    throw e;
  } finally {
    rd = outerRd;
    outerRd.pos = outerPos;
    end = outerEnd;
    base = outerBase;
    maxDepth = outerMaxDepth;
    maxNodes = outerMaxNodes;
    nodesLeft = outerNodesLeft;
  }
}

function plural(n: number, what: string): string {
  return `${n} ${what}${n === 1 ? '' : 's'}`;
}

function truncated(n: number): CodecError {
  return fail(
    `truncated input: ${plural(n, 'byte')} needed at offset ${rd.pos - base}, ` +
      `${end - rd.pos} left`,
  );
}

// Fixed-size reads, bounded by `end` (not by the reader's end, which may be the whole batch).
function u8(): number {
  const r = rd;
  if (r.pos >= end) throw truncated(1);
  return r.buf[r.pos++];
}
function u16(): number {
  const r = rd;
  const p = r.pos;
  if (p + 2 > end) throw truncated(2);
  r.pos = p + 2;
  return (r.buf[p] << 8) | r.buf[p + 1];
}
function u32(): number {
  const r = rd;
  const p = r.pos;
  if (p + 4 > end) throw truncated(4);
  r.pos = p + 4;
  return r.view.getUint32(p);
}
function i8(): number {
  const r = rd;
  if (r.pos >= end) throw truncated(1);
  return (r.buf[r.pos++] << 24) >> 24;
}
function i16(): number {
  const r = rd;
  const p = r.pos;
  if (p + 2 > end) throw truncated(2);
  r.pos = p + 2;
  return (((r.buf[p] << 8) | r.buf[p + 1]) << 16) >> 16;
}
function i32(): number {
  const r = rd;
  const p = r.pos;
  if (p + 4 > end) throw truncated(4);
  r.pos = p + 4;
  return r.view.getInt32(p);
}
function f32(): number {
  const r = rd;
  const p = r.pos;
  if (p + 4 > end) throw truncated(4);
  r.pos = p + 4;
  return r.view.getFloat32(p);
}
function f64(): number {
  const r = rd;
  const p = r.pos;
  if (p + 8 > end) throw truncated(8);
  r.pos = p + 8;
  return r.view.getFloat64(p);
}

function readAny(depth: number): unknown {
  const r = rd;
  const at = r.pos; // where this value starts, for messages
  if (at >= end) throw truncated(1);
  const b = r.buf[r.pos++];
  if (b < 0x80) return b;
  if (b >= 0xe0) return b - 0x100;
  if (b < 0xa0) return b < 0x90 ? readMap(b & 0x0f, depth, at) : readArray(b & 0x0f, depth, at);
  if (b < 0xc0) return readStr(b & 0x1f);
  switch (b) {
    case 0xc0:
      return null;
    case 0xc2:
      return false;
    case 0xc3:
      return true;
    case 0xc4:
      return readBin(u8());
    case 0xc5:
      return readBin(u16());
    case 0xc6:
      return readBin(u32());
    case 0xc7:
      return readExt(u8(), depth, at);
    case 0xc8:
      return readExt(u16(), depth, at);
    case 0xc9:
      return readExt(u32(), depth, at);
    case 0xca:
      return f32();
    case 0xcb:
      return f64();
    case 0xcc:
      return u8();
    case 0xcd:
      return u16();
    case 0xce:
      return u32();
    case 0xcf:
      return readUint64();
    case 0xd0:
      return i8();
    case 0xd1:
      return i16();
    case 0xd2:
      return i32();
    case 0xd3:
      return readInt64();
    case 0xd4:
      return readExt(1, depth, at);
    case 0xd5:
      return readExt(2, depth, at);
    case 0xd6:
      return readExt(4, depth, at);
    case 0xd7:
      return readExt(8, depth, at);
    case 0xd8:
      return readExt(16, depth, at);
    case 0xd9:
      return readStr(u8());
    case 0xda:
      return readStr(u16());
    case 0xdb:
      return readStr(u32());
    case 0xdc:
      return readArray(u16(), depth, at);
    case 0xdd:
      return readArray(u32(), depth, at);
    case 0xde:
      return readMap(u16(), depth, at);
    case 0xdf:
      return readMap(u32(), depth, at);
    default: // 0xc1, never used by msgpack
      throw fail(`reserved byte 0xc1 at offset ${at - base}`);
  }
}

// 64-bit integers: a number when it is a safe integer, else a BigInt.
function readUint64(): number | bigint {
  const r = rd;
  const p = r.pos;
  if (p + 8 > end) throw truncated(8);
  r.pos = p + 8;
  const hi = r.view.getUint32(p);
  if (hi <= 0x1fffff) return hi * 0x100000000 + r.view.getUint32(p + 4);
  return r.view.getBigUint64(p);
}

function readInt64(): number | bigint {
  const r = rd;
  const p = r.pos;
  if (p + 8 > end) throw truncated(8);
  r.pos = p + 8;
  const hi = r.view.getInt32(p);
  if (hi >= -0x200000 && hi <= 0x1fffff) {
    const v = hi * 0x100000000 + r.view.getUint32(p + 4);
    if (v >= -Number.MAX_SAFE_INTEGER) return v;
  }
  return r.view.getBigInt64(p);
}

function enterContainer(depth: number, at: number): void {
  if (depth >= maxDepth) {
    throw fail(`nesting deeper than ${maxDepth} (DecodeLimits.maxDepth) at offset ${at - base}`);
  }
}

function countNodes(n: number): void {
  if (n > nodesLeft) throw fail(`more than ${maxNodes} values (DecodeLimits.maxNodes)`);
  nodesLeft -= n;
}

function readArray(n: number, depth: number, at: number): unknown[] {
  enterContainer(depth, at);
  // Every element takes at least one byte: a count the input cannot hold fails before allocating.
  const left = end - rd.pos;
  if (n > left) {
    throw fail(
      `array of ${plural(n, 'element')} at offset ${at - base} cannot fit in the ` +
        `${plural(left, 'byte')} left`,
    );
  }
  countNodes(n);
  const a = new Array(n);
  for (let i = 0; i < n; i++) a[i] = readAny(depth + 1);
  return a;
}

function readMap(n: number, depth: number, at: number): Record<string, unknown> {
  enterContainer(depth, at);
  // Every entry takes at least two bytes.
  const left = end - rd.pos;
  if (n * 2 > left) {
    throw fail(
      `map of ${n === 1 ? '1 entry' : `${n} entries`} at offset ${at - base} cannot fit in ` +
        `the ${plural(left, 'byte')} left`,
    );
  }
  countNodes(n * 2);
  const o: Record<string, unknown> = {};
  for (let i = 0; i < n; i++) {
    const k = readKey(depth + 1);
    const v = readAny(depth + 1);
    if (k === '__proto__' || k === 'constructor' || k === 'prototype') {
      own(o, k, v, true);
    } else {
      o[k] = v;
    }
  }
  return o;
}

function readKey(depth: number): string {
  const r = rd;
  const at = r.pos;
  if (at < end) {
    const b = r.buf[at];
    if (b >= 0xa0 && b < 0xc0) {
      r.pos++;
      return readStr(b & 0x1f, KEYS);
    }
  }
  const k = readAny(depth);
  if (typeof k === 'string') return k;
  try {
    return String(k);
  } catch {
    // e.g. a decoded map with a "toString" key used as a key: String() finds no function.
    throw fail(`the map key at offset ${at - base} cannot be turned into a property name`);
  }
}

/**
 * Interns short strings by their UTF-8 bytes. Map keys repeat (the same few names in every
 * payload), and so do many short values ('progress', 'ok', an enum's members): a string seen
 * before costs a hash and a compare instead of a decode and an allocation, and every object gets
 * the same key instance, which keeps V8's property stores on their fast path. Slots are
 * overwritten on collision and a hit is always checked byte by byte, so the memory is fixed
 * (slots x INTERN_MAX_BYTES bytes, plus one string of at most that many bytes per slot)
 * whatever a peer sends. Keys and values have separate slots, so that varied values never
 * evict the keys; one set of module-level arrays, because class fields cost a load each.
 */
const INTERN_MAX_BYTES = 16;
const KEY_SLOTS = 4096; // slots [0, KEY_SLOTS)
const VALUE_SLOTS = 1024; // slots [KEY_SLOTS, KEY_SLOTS + VALUE_SLOTS)
const KEYS = 0;
const VALUES = KEY_SLOTS;
const internStrings: string[] = new Array<string>(KEY_SLOTS + VALUE_SLOTS).fill('');
const internLengths = new Uint8Array(KEY_SLOTS + VALUE_SLOTS); // 0: empty slot
const internBytes = new Uint8Array((KEY_SLOTS + VALUE_SLOTS) * INTERN_MAX_BYTES);

/**
 * buf[start, start + n) as a string, 0 < n <= INTERN_MAX_BYTES, bounds-checked by the caller;
 * `table` is KEYS or VALUES.
 */
function interned(table: number, buf: Uint8Array, start: number, n: number): string {
  const stop = start + n;
  let h = 0x811c9dc5 ^ n;
  for (let i = start; i < stop; i++) h = Math.imul(h ^ buf[i], 0x01000193); // FNV-1a
  const slot = table + ((h ^ (h >>> 16)) & (table === KEYS ? KEY_SLOTS - 1 : VALUE_SLOTS - 1));
  const at = slot * INTERN_MAX_BYTES;
  const bytes = internBytes;
  if (internLengths[slot] === n) {
    let i = 0;
    while (i < n && bytes[at + i] === buf[start + i]) i++;
    if (i === n) return internStrings[slot];
  }
  const s = utf8Slice(buf, start, n);
  for (let i = 0; i < n; i++) bytes[at + i] = buf[start + i];
  internLengths[slot] = n;
  internStrings[slot] = s;
  return s;
}

const fromCharCode = String.fromCharCode;
const asciiCodes: number[] = [];

// One fromCharCode call with the bytes as arguments: up to 15 bytes, apply with an array costs
// twice as much and TextDecoder four times as much.
/** b[s, s + n) as a string; every byte < 0x80 (checked by the caller). */
function shortAscii(b: Uint8Array, s: number, n: number): string {
  switch (n) {
    case 0:
      return '';
    case 1:
      return fromCharCode(b[s]);
    case 2:
      return fromCharCode(b[s], b[s + 1]);
    case 3:
      return fromCharCode(b[s], b[s + 1], b[s + 2]);
    case 4:
      return fromCharCode(b[s], b[s + 1], b[s + 2], b[s + 3]);
    case 5:
      return fromCharCode(b[s], b[s + 1], b[s + 2], b[s + 3], b[s + 4]);
    case 6:
      return fromCharCode(b[s], b[s + 1], b[s + 2], b[s + 3], b[s + 4], b[s + 5]);
    case 7:
      return fromCharCode(b[s], b[s + 1], b[s + 2], b[s + 3], b[s + 4], b[s + 5], b[s + 6]);
    case 8:
      return fromCharCode(b[s], b[s + 1], b[s + 2], b[s + 3], b[s + 4], b[s + 5], b[s + 6], b[s + 7]);
    case 9:
      return fromCharCode(b[s], b[s + 1], b[s + 2], b[s + 3], b[s + 4], b[s + 5], b[s + 6], b[s + 7], b[s + 8]);
    case 10:
      return fromCharCode(b[s], b[s + 1], b[s + 2], b[s + 3], b[s + 4], b[s + 5], b[s + 6], b[s + 7], b[s + 8], b[s + 9]);
    case 11:
      return fromCharCode(b[s], b[s + 1], b[s + 2], b[s + 3], b[s + 4], b[s + 5], b[s + 6], b[s + 7], b[s + 8], b[s + 9], b[s + 10]);
    case 12:
      return fromCharCode(b[s], b[s + 1], b[s + 2], b[s + 3], b[s + 4], b[s + 5], b[s + 6], b[s + 7], b[s + 8], b[s + 9], b[s + 10], b[s + 11]);
    case 13:
      return fromCharCode(b[s], b[s + 1], b[s + 2], b[s + 3], b[s + 4], b[s + 5], b[s + 6], b[s + 7], b[s + 8], b[s + 9], b[s + 10], b[s + 11], b[s + 12]);
    case 14:
      return fromCharCode(b[s], b[s + 1], b[s + 2], b[s + 3], b[s + 4], b[s + 5], b[s + 6], b[s + 7], b[s + 8], b[s + 9], b[s + 10], b[s + 11], b[s + 12], b[s + 13]);
    case 15:
      return fromCharCode(b[s], b[s + 1], b[s + 2], b[s + 3], b[s + 4], b[s + 5], b[s + 6], b[s + 7], b[s + 8], b[s + 9], b[s + 10], b[s + 11], b[s + 12], b[s + 13], b[s + 14]);
    default: {
      const codes = asciiCodes;
      codes.length = n;
      for (let i = 0; i < n; i++) codes[i] = b[s + i];
      return fromCharCode.apply(null, codes);
    }
  }
}

// ASCII up to this length is decoded with fromCharCode; longer strings, or any with a byte
// >= 0x80, by TextDecoder, whose per-call cost (~100 ns here) pays off from ~24 bytes on.
const MANUAL_ASCII_MAX = 24;

/** buf[start, start + n) decoded as UTF-8 (bounds-checked by the caller). */
function utf8Slice(buf: Uint8Array, start: number, n: number): string {
  const stop = start + n;
  if (n <= MANUAL_ASCII_MAX) {
    let i = start;
    while (i < stop && buf[i] < 0x80) i++;
    if (i === stop) return shortAscii(buf, start, n);
  }
  return textDecoder.decode(buf.subarray(start, stop));
}

/** A string of `n` bytes at the cursor; short ones are interned in `table`. */
function readStr(n: number, table = VALUES): string {
  const r = rd;
  const start = r.pos;
  const stop = start + n;
  if (stop > end) throw truncated(n);
  r.pos = stop;
  if (n === 0) return '';
  if (n <= INTERN_MAX_BYTES) return interned(table, r.buf, start, n);
  return utf8Slice(r.buf, start, n);
}

/** A copy of `n` bytes at `start`: decoded bytes never alias the received batch. */
function copyBytes(start: number, n: number): Uint8Array<ArrayBuffer> {
  const out = new Uint8Array(n);
  out.set(rd.buf.subarray(start, start + n));
  return out;
}

// Bulk bytes are handed out as views of the received batch rather than copied, when that is
// safe and cheap: only in a batch given to beginBatch(received), a buffer the addon made for
// this delivery alone (never reused, never seen by anyone else), and only when the bytes are at
// least half of that buffer, so a kept view pins at most about twice its size (a large frame is
// delivered in a buffer of its own: the view pins the frame's envelope with it).
const VIEW_MIN_BYTES = 64 * 1024;

/** `n` bytes at `start`: a view of the batch where that is safe (above), else a copy. */
function bulkBytes(start: number, n: number): Uint8Array<ArrayBuffer> {
  const buf = rd.buf as Uint8Array<ArrayBuffer>;
  const ab = buf.buffer;
  if (n >= VIEW_MIN_BYTES && 2 * n >= ab.byteLength && ownedBatches.length > 0 && ownedBatches[ownedBatches.length - 1] === ab) {
    return buf.subarray(start, start + n);
  }
  return copyBytes(start, n);
}

function readBin(n: number): Uint8Array {
  const r = rd;
  if (n > end - r.pos) throw truncated(n);
  const out = bulkBytes(r.pos, n);
  r.pos += n;
  return out;
}

function readExt(n: number, depth: number, at: number): unknown {
  const type = i8();
  const r = rd;
  if (n > end - r.pos) throw truncated(n);
  const start = r.pos;
  const stop = start + n;
  switch (type) {
    case EXT_UNDEFINED:
      if (n !== 0) throw bad(at, `undefined (ext 1) with ${plural(n, 'byte')} of data`);
      return undefined;
    case EXT_DATE:
      if (n !== 8) throw bad(at, `Date (ext 2) of ${plural(n, 'byte')}, not 8,`);
      r.pos = stop;
      return new Date(r.view.getFloat64(start));
    case EXT_BIGINT:
      r.pos = stop;
      return readBigInt(start, n, at);
    case EXT_ERROR:
    case EXT_MAP:
    case EXT_SET:
    case EXT_REGEXP:
      return readNested(type, stop, depth, at);
    case EXT_TYPED_ARRAY:
      r.pos = stop;
      return readTypedArray(start, n, at);
    case EXT_ARRAY_BUFFER:
      r.pos = stop;
      return copyBytes(start, n).buffer;
    case EXT_BUFFER: {
      r.pos = stop;
      const bytes = bulkBytes(start, n);
      return NodeBuffer !== undefined ? NodeBuffer.from(bytes.buffer, bytes.byteOffset, n) : bytes;
    }
    case EXT_TIMESTAMP:
      r.pos = stop;
      return readTimestamp(start, n, at);
    default:
      throw bad(at, `unknown ext type ${type}`);
  }
}

/** "<what> at offset N": for a value that starts at `at`. */
function bad(at: number, what: string): CodecError {
  return fail(`${what} at offset ${at - base}`);
}

function readBigInt(start: number, n: number, at: number): bigint {
  const buf = rd.buf;
  const sign = n > 0 ? buf[start] : -1;
  // One encoding per value: sign 0 or 1, no leading zero byte, no negative zero.
  if ((sign !== 0 && sign !== 1) || (n > 1 && buf[start + 1] === 0) || (sign === 1 && n === 1)) {
    throw bad(at, 'malformed BigInt (ext 3)');
  }
  if (n === 1) return 0n;
  let hex = '0x';
  for (let i = start + 1; i < start + n; i++) hex += (buf[i] < 16 ? '0' : '') + buf[i].toString(16);
  const magnitude = BigInt(hex);
  return sign === 1 ? -magnitude : magnitude;
}

function readTimestamp(start: number, n: number, at: number): Date {
  const view = rd.view;
  if (n === 4) return new Date(view.getUint32(start) * 1000);
  if (n === 8) {
    const hi = view.getUint32(start);
    const nsec = hi >>> 2;
    const sec = (hi & 3) * 0x100000000 + view.getUint32(start + 4);
    if (nsec <= 999_999_999) return new Date(sec * 1000 + Math.floor(nsec / 1e6));
  } else if (n === 12) {
    const nsec = view.getUint32(start);
    const sec = Number(view.getBigInt64(start + 4));
    if (nsec <= 999_999_999) return new Date(sec * 1000 + Math.floor(nsec / 1e6));
  }
  throw bad(at, `malformed timestamp (ext -1) of ${plural(n, 'byte')}`);
}

function readTypedArray(start: number, n: number, at: number): ArrayBufferView {
  if (n === 0) throw bad(at, 'typed array (ext 8) without its element tag');
  const tag = rd.buf[start];
  const Ctor = TYPED_ARRAYS[tag];
  if (Ctor === undefined && tag !== TAG_DATA_VIEW) {
    throw bad(at, `typed array (ext 8) with unknown element tag ${tag}`);
  }
  const size = Ctor === undefined ? 1 : Ctor.BYTES_PER_ELEMENT;
  if ((n - 1) % size !== 0) {
    throw bad(at, `${Ctor!.name} (ext 8) of ${plural(n - 1, 'byte')}, not a multiple of ${size},`);
  }
  const copy = copyBytes(start + 1, n - 1);
  if (Ctor === undefined) return new DataView(copy.buffer);
  if (BIG_ENDIAN_HOST && size > 1) swapBytes(copy, 0, copy.length, size);
  return new Ctor(copy.buffer);
}

function isArrayHeader(b: number): boolean {
  return (b & 0xf0) === 0x90 || b === 0xdc || b === 0xdd;
}
function isMapHeader(b: number): boolean {
  return (b & 0xf0) === 0x80 || b === 0xde || b === 0xdf;
}

/** Ext 4-7 hold one msgpack value (map or array) that must fill the ext data exactly. */
function readNested(type: number, stop: number, depth: number, at: number): unknown {
  const r = rd;
  const wantMap = type === EXT_ERROR;
  const first = r.pos < stop ? r.buf[r.pos] : -1;
  if (first < 0 || !(wantMap ? isMapHeader(first) : isArrayHeader(first))) {
    throw bad(at, `ext ${type} that does not hold a msgpack ${wantMap ? 'map' : 'array'}`);
  }
  // Read inside the ext data only: a count that runs past it must not borrow the bytes after it.
  const outerEnd = end;
  end = stop;
  const v = readAny(depth);
  if (r.pos !== stop) {
    throw bad(at, `ext ${type} with ${plural(stop - r.pos, 'stray byte')} after its value`);
  }
  end = outerEnd;
  switch (type) {
    case EXT_MAP: {
      const a = v as unknown[];
      if (a.length % 2 !== 0) throw bad(at, 'Map (ext 5) with an odd count');
      const m = new Map<unknown, unknown>();
      for (let i = 0; i < a.length; i += 2) m.set(a[i], a[i + 1]);
      return m;
    }
    case EXT_SET:
      return new Set(v as unknown[]);
    case EXT_REGEXP: {
      const a = v as unknown[];
      if (a.length !== 2 || typeof a[0] !== 'string' || typeof a[1] !== 'string') {
        throw bad(at, 'RegExp (ext 7) that is not [source, flags]');
      }
      try {
        return new RegExp(a[0], a[1]);
      } catch (e) {
        throw bad(at, `RegExp (ext 7) refused by RegExp (${(e as Error).message})`);
      }
    }
    default:
      return buildError(v as Record<string, unknown>, at);
  }
}

// The classes an Error may be rebuilt as. A Map, so that no name ("constructor", "__proto__")
// can reach anything but these.
const ERROR_CLASSES = new Map<string, ErrorConstructor>([
  ['Error', Error],
  ['TypeError', TypeError],
  ['RangeError', RangeError],
  ['SyntaxError', SyntaxError],
  ['ReferenceError', ReferenceError],
  ['EvalError', EvalError],
  ['URIError', URIError],
]);

function own(o: object, key: string, value: unknown, enumerable: boolean): void {
  Object.defineProperty(o, key, { value, writable: true, enumerable, configurable: true });
}

function buildError(f: Record<string, unknown>, at: number): Error {
  const has = (k: string) => Object.prototype.hasOwnProperty.call(f, k);
  const { name, message, stack, props, errors } = f;
  const cls = f.class;
  if (
    (name !== undefined && typeof name !== 'string') ||
    (message !== undefined && typeof message !== 'string') ||
    (cls !== undefined && typeof cls !== 'string') ||
    (props !== undefined &&
      (typeof props !== 'object' || props === null || Array.isArray(props))) ||
    (errors !== undefined && !Array.isArray(errors))
  ) {
    throw bad(at, 'malformed Error (ext 4): name, message, class, props or errors of a bad type,');
  }
  const options = has('cause') ? { cause: f.cause } : undefined;
  let e: Error;
  if (cls === 'AggregateError') {
    e = new AggregateError(errors ?? [], message ?? '', options);
  } else {
    const Ctor = (cls !== undefined && ERROR_CLASSES.get(cls)) || Error;
    e = new Ctor(message ?? '', options);
    if (errors !== undefined) own(e, 'errors', errors, false);
  }
  if (name !== undefined && name !== e.name) own(e, 'name', name, false);
  // A class that was not rebuilt (a user subclass, DOMException) is kept where a program can
  // read it, and where a log shows it: in the stack's first line, as util.inspect shows the
  // sender's error (lib/error-header.ts). Encoding this Error again sends the same class.
  const lost = typeof cls === 'string' && cls !== '' && cls !== e.constructor.name;
  if (lost) own(e, 'remoteClass', cls, false);
  // The receiver's own stack would point into the decoder: keep the sender's, or none.
  if (typeof stack === 'string') own(e, 'stack', lost ? withClassHeader(stack, cls, e.name) : stack, false);
  else delete e.stack;
  if (has('code')) own(e, 'code', f.code, true);
  if (props !== undefined) {
    for (const k of Object.keys(props)) own(e, k, (props as Record<string, unknown>)[k], true);
  }
  return e;
}

// Growable byte writer and bounds-checked reader shared by the wire format (wire.ts) and the
// value codec (codec.ts). Both write straight into one buffer per JavaScript turn, so a batch of
// frames is built without an intermediate copy per payload.

const textEncoder = new TextEncoder();
const textDecoder = new TextDecoder('utf-8', { fatal: false });

export class ByteWriter {
  buf: Uint8Array;
  view: DataView;
  pos = 0;

  constructor(initial = 4096) {
    this.buf = new Uint8Array(initial);
    this.view = new DataView(this.buf.buffer);
  }

  /** Makes room for `n` more bytes. */
  ensure(n: number): void {
    const need = this.pos + n;
    if (need <= this.buf.length) return;
    let size = this.buf.length * 2;
    while (size < need) size *= 2;
    const grown = new Uint8Array(size);
    grown.set(this.buf.subarray(0, this.pos));
    this.buf = grown;
    this.view = new DataView(grown.buffer);
  }

  u8(v: number): void {
    this.ensure(1);
    this.buf[this.pos++] = v;
  }
  u16(v: number): void {
    this.ensure(2);
    this.view.setUint16(this.pos, v);
    this.pos += 2;
  }
  u32(v: number): void {
    this.ensure(4);
    this.view.setUint32(this.pos, v);
    this.pos += 4;
  }
  u64(v: number): void {
    this.ensure(8);
    this.view.setUint32(this.pos, Math.floor(v / 0x100000000));
    this.view.setUint32(this.pos + 4, v >>> 0);
    this.pos += 8;
  }
  f64(v: number): void {
    this.ensure(8);
    this.view.setFloat64(this.pos, v);
    this.pos += 8;
  }
  bytes(b: Uint8Array): void {
    this.ensure(b.length);
    this.buf.set(b, this.pos);
    this.pos += b.length;
  }
  /** Writes `s` as UTF-8 and returns its byte length. */
  utf8(s: string): number {
    // Worst case 3 bytes per UTF-16 unit.
    this.ensure(s.length * 3);
    const { written } = textEncoder.encodeInto(s, this.buf.subarray(this.pos));
    this.pos += written;
    return written;
  }
  /** A view of everything written so far (no copy). */
  view_(): Uint8Array {
    return this.buf.subarray(0, this.pos);
  }
  reset(): void {
    this.pos = 0;
  }
}

export class ByteReader {
  readonly buf: Uint8Array;
  readonly view: DataView;
  pos: number;
  end: number; // narrowed to a frame's end while its envelope is read (lib/wire.ts)

  constructor(buf: Uint8Array, start = 0, end = buf.length) {
    this.buf = buf;
    this.view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
    this.pos = start;
    this.end = end;
  }

  remaining(): number {
    return this.end - this.pos;
  }
  /** Throws a RangeError unless `n` more bytes are there: lengths are never trusted. */
  need(n: number): void {
    if (n < 0 || this.pos + n > this.end) {
      throw new RangeError(
        `truncated input: ${n} bytes needed at offset ${this.pos}, ${this.end - this.pos} left`,
      );
    }
  }
  u8(): number {
    this.need(1);
    return this.buf[this.pos++];
  }
  u16(): number {
    this.need(2);
    const v = this.view.getUint16(this.pos);
    this.pos += 2;
    return v;
  }
  u32(): number {
    this.need(4);
    const v = this.view.getUint32(this.pos);
    this.pos += 4;
    return v;
  }
  u64(): number {
    this.need(8);
    const hi = this.view.getUint32(this.pos);
    const lo = this.view.getUint32(this.pos + 4);
    this.pos += 8;
    return hi * 0x100000000 + lo;
  }
  i8(): number {
    this.need(1);
    return this.view.getInt8(this.pos++);
  }
  i16(): number {
    this.need(2);
    const v = this.view.getInt16(this.pos);
    this.pos += 2;
    return v;
  }
  i32(): number {
    this.need(4);
    const v = this.view.getInt32(this.pos);
    this.pos += 4;
    return v;
  }
  f32(): number {
    this.need(4);
    const v = this.view.getFloat32(this.pos);
    this.pos += 4;
    return v;
  }
  f64(): number {
    this.need(8);
    const v = this.view.getFloat64(this.pos);
    this.pos += 8;
    return v;
  }
  /** A view of the next `n` bytes (no copy). */
  take(n: number): Uint8Array {
    this.need(n);
    const out = this.buf.subarray(this.pos, this.pos + n);
    this.pos += n;
    return out;
  }
  utf8(n: number): string {
    return textDecoder.decode(this.take(n));
  }
}

/**
 * Interns short UTF-8 strings by their bytes: a string seen before costs a hash and a compare
 * instead of a decode and an allocation. For topics, read once per received frame.
 */
export class StringCache {
  static readonly MAX = 64;
  readonly #strings: string[];
  readonly #lengths: Uint8Array;
  readonly #bytes: Uint8Array;
  readonly #mask: number;

  constructor(slots = 256) {
    this.#strings = new Array<string>(slots).fill('');
    this.#lengths = new Uint8Array(slots);
    this.#bytes = new Uint8Array(slots * StringCache.MAX);
    this.#mask = slots - 1;
  }

  /** The string of buf[start, start + n), which the caller has bounds-checked. */
  get(buf: Uint8Array, start: number, n: number): string {
    if (n === 0) return '';
    if (n > StringCache.MAX) return textDecoder.decode(buf.subarray(start, start + n));
    let h = 0x811c9dc5 ^ n;
    for (let i = start; i < start + n; i++) h = Math.imul(h ^ buf[i], 0x01000193); // FNV-1a
    const slot = (h ^ (h >>> 16)) & this.#mask;
    const at = slot * StringCache.MAX;
    const bytes = this.#bytes;
    if (this.#lengths[slot] === n) {
      let i = 0;
      while (i < n && bytes[at + i] === buf[start + i]) i++;
      if (i === n) return this.#strings[slot];
    }
    const s = textDecoder.decode(buf.subarray(start, start + n));
    for (let i = 0; i < n; i++) bytes[at + i] = buf[start + i];
    this.#lengths[slot] = n;
    this.#strings[slot] = s;
    return s;
  }
}

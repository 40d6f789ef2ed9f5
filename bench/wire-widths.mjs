// What writing an envelope in the smallest msgpack forms would cost the Node.js sender, beside the
// fixed widths lib/wire.ts writes (docs/PROTOCOL.md, section 3, "What the encoders write").
// Run after `npm run build:ts`:   node bench/wire-widths.mjs [--quick]
//
// "fixed" is the production path: beginFrame() (sender as uint32, payload as a bin 32 whose length
// is patched), encodeValue() in place, endFrame(). "smallest" writes the sender as a fixint and
// reserves the same 5 bytes for the bin header, then, once the payload's size is known, moves the
// payload left over the unused header bytes (bin 8 or bin 16), as writeString() does for str
// headers: the only way to encode a value in place without knowing its size first.
//
// Method: frames are written 1000 to a batch into one reused ByteWriter (a turn's batch); every
// round lasts at least 300 ms (--quick: 100 ms) after one warm-up round; the figure is the median
// of 5 rounds, in ns per frame. The two variants alternate round by round.
import { ByteWriter } from '../dist/esm/bytes.js';
import { encodeValue, writeString } from '../dist/esm/codec.js';
import { beginFrame, endFrame, Kind } from '../dist/esm/wire.js';

const ROUND_MS = process.argv.includes('--quick') ? 100 : 300;
const ROUNDS = 5;
const BATCH = 1000;

const now = Date.now();
const payloads = {
  'S1 object (63 B)': Array.from({ length: 1024 }, (_, i) => ({
    id: i + 1, ts: now + i, name: 'progress', values: [1, 2, 3], ok: true, note: 'hello world',
  })),
  'Uint8Array 200 B': [new Uint8Array(200).fill(7)],
  'Uint8Array 4 KiB': [new Uint8Array(4096).fill(7)],
  'Uint8Array 60 KiB': [new Uint8Array(60 * 1024).fill(7)],
};

const w = new ByteWriter(1 << 20);

function fixed(value) {
  const start = w.pos;
  const at = beginFrame(w, Kind.event, 0, 'job:progress', 0);
  encodeValue(w, value);
  endFrame(w, start, at);
}

function smallest(value) {
  const start = w.pos;
  w.u32(0);
  w.u8(0x97);
  w.u8(1);
  w.u8(Kind.event);
  w.u8(0); // id
  writeString(w, 'job:progress');
  w.u8(0); // flags
  w.u8(0); // sender as a fixint
  w.ensure(5);
  const header = w.pos;
  w.pos += 5; // room for the largest bin header
  encodeValue(w, value);
  const n = w.pos - header - 5;
  const buf = w.buf;
  const size = n < 0x100 ? 2 : n < 0x10000 ? 3 : 5;
  if (size < 5) buf.copyWithin(header + size, header + 5, w.pos);
  if (size === 2) {
    buf[header] = 0xc4;
    buf[header + 1] = n;
  } else if (size === 3) {
    buf[header] = 0xc5;
    w.view.setUint16(header + 1, n);
  } else {
    buf[header] = 0xc6;
    w.view.setUint32(header + 1, n);
  }
  w.pos = header + size + n;
  w.view.setUint32(start, w.pos - start - 4);
}

function round(write, values) {
  let frames = 0;
  let bytes = 0;
  const t0 = process.hrtime.bigint();
  let elapsed = 0;
  let i = 0;
  do {
    w.reset();
    for (let k = 0; k < BATCH; k++) write(values[i++ % values.length]);
    bytes += w.pos;
    frames += BATCH;
    elapsed = Number(process.hrtime.bigint() - t0) / 1e6;
  } while (elapsed < ROUND_MS);
  return { ns: (elapsed * 1e6) / frames, bytesPerFrame: bytes / frames };
}

const median = (xs) => [...xs].sort((a, b) => a - b)[xs.length >> 1];
console.log(`node ${process.version}; ${ROUNDS} rounds of >= ${ROUND_MS} ms, ${BATCH} frames per batch`);
console.log('payload | fixed ns/frame | smallest ns/frame | smallest / fixed | bytes/frame fixed -> smallest');
for (const [name, values] of Object.entries(payloads)) {
  round(fixed, values);
  round(smallest, values);
  const f = [];
  const s = [];
  let fb = 0;
  let sb = 0;
  for (let r = 0; r < ROUNDS; r++) {
    const a = round(fixed, values);
    const b = round(smallest, values);
    f.push(a.ns);
    s.push(b.ns);
    fb = a.bytesPerFrame;
    sb = b.bytesPerFrame;
  }
  const mf = median(f);
  const ms = median(s);
  console.log(`${name} | ${mf.toFixed(1)} | ${ms.toFixed(1)} | ${(ms / mf).toFixed(2)}x | ${fb.toFixed(1)} -> ${sb.toFixed(1)}`);
}

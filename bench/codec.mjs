// Value codec throughput: lib/codec.ts beside msgpackr, v8.serialize and JSON, on three payloads.
// Run after `npm run build:ts`:   node bench/codec.mjs [--quick] [--json FILE]
//
// Method: for every (payload, codec, operation) the loop runs in rounds of at least 300 ms
// (--quick: 100 ms), after one untimed warm-up round; the figure is the median of 5 rounds, in
// operations per second. Inputs are prepared before timing: 1024 S1 objects (id incrementing,
// ts = Date.now()) cycled through, so object construction is not measured. Decoding reads each
// codec's own encodings, packed back to back into one batch and handed over as a fresh
// subarray per call, which is how lib/wire.ts hands payloads over (a codec cannot keep
// per-buffer state between calls, as it could with the same Uint8Array over and over).
// Every result is consumed so that nothing is optimised away.
import { writeFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { serialize, deserialize } from 'node:v8';
import { Packr } from 'msgpackr';
import { ByteWriter } from '../dist/esm/bytes.js';
import { decode, encode, encodeValue } from '../dist/esm/codec.js';

const quick = process.argv.includes('--quick');
const jsonAt = process.argv.indexOf('--json');
const ROUND_MS = quick ? 100 : 300;
const ROUNDS = 5;

const payloads = {
  S1: () => {
    const now = Date.now();
    return Array.from({ length: 1024 }, (_, i) => ({
      id: i + 1,
      ts: now + i,
      name: 'progress',
      values: [1, 2, 3],
      ok: true,
      note: 'hello world',
    }));
  },
  'Uint8Array 64 KiB': () => {
    const b = new Uint8Array(65536);
    for (let i = 0; i < b.length; i++) b[i] = (i * 31) & 0xff;
    return [b];
  },
  'Float64Array(8192)': () => [Float64Array.from({ length: 8192 }, (_, i) => i / 3)],
};

const writer = new ByteWriter(1 << 17);
const textEncoder = new TextEncoder();
const textDecoder = new TextDecoder();
const standard = new Packr({ structuredClone: false, useRecords: false });
const msgpackrDefault = new Packr();

// name -> { encode(value) -> bytes-ish, decode(bytes) -> value }
const codecs = {
  'switchboard encodeValue': {
    encode: (v) => {
      writer.reset();
      encodeValue(writer, v);
      return writer.pos;
    },
    prepare: (v) => encode(v),
    decode: (b) => decode(b),
  },
  'switchboard encode()': { encode: (v) => encode(v).length, prepare: (v) => encode(v), decode: null },
  'msgpackr standard': {
    encode: (v) => standard.pack(v).length,
    prepare: (v) => Uint8Array.from(standard.pack(v)),
    decode: (b) => standard.unpack(b),
  },
  'msgpackr default': {
    encode: (v) => msgpackrDefault.pack(v).length,
    prepare: (v) => Uint8Array.from(msgpackrDefault.pack(v)),
    decode: (b) => msgpackrDefault.unpack(b),
  },
  'v8.serialize': {
    encode: (v) => serialize(v).length,
    prepare: (v) => serialize(v),
    decode: (b) => deserialize(b),
  },
  'JSON + TextEncoder': {
    encode: (v) => textEncoder.encode(JSON.stringify(v)).length,
    prepare: (v) => textEncoder.encode(JSON.stringify(v)),
    decode: (b) => JSON.parse(textDecoder.decode(b)),
  },
};

let sink = 0;
function round(fn, inputs) {
  const n = inputs.length;
  let ops = 0;
  const start = process.hrtime.bigint();
  const stop = start + BigInt(ROUND_MS) * 1_000_000n;
  let now = start;
  do {
    for (let i = 0; i < 256; i++) {
      const r = fn(inputs[(ops + i) % n]);
      sink += typeof r === 'number' ? r : 1;
    }
    ops += 256;
    now = process.hrtime.bigint();
  } while (now < stop);
  return (ops * 1e9) / Number(now - start);
}

function measure(fn, inputs) {
  round(fn, inputs); // warm-up
  const rates = [];
  for (let i = 0; i < ROUNDS; i++) rates.push(round(fn, inputs));
  rates.sort((a, b) => a - b);
  return rates[ROUNDS >> 1];
}

/** The encodings back to back in one buffer, and a function that views the i-th one. */
function batchOf(encodings) {
  const batch = new Uint8Array(encodings.reduce((n, e) => n + e.length, 0));
  const bounds = [];
  let at = 0;
  for (const e of encodings) {
    batch.set(e, at);
    bounds.push(at, at + e.length);
    at += e.length;
  }
  return (i) => batch.subarray(bounds[2 * i], bounds[2 * i + 1]);
}

const indices = (n) => Array.from({ length: n }, (_, i) => i);

const results = [];
for (const [payload, make] of Object.entries(payloads)) {
  const values = make();
  for (const [name, c] of Object.entries(codecs)) {
    const size = c.prepare(values[0]).length;
    const enc = measure(c.encode, values);
    let dec = null;
    if (c.decode) {
      const view = batchOf(values.map(c.prepare));
      dec = measure((i) => c.decode(view(i)), indices(values.length));
    }
    results.push({ payload, codec: name, bytes: size, encode: enc, decode: dec });
    process.stderr.write('.');
  }
  if (values[0] instanceof Uint8Array || ArrayBuffer.isView(values[0])) {
    // The floor for any codec that hands out a copy: allocating and filling one.
    const view = batchOf(values.map((v) => new Uint8Array(v.buffer, v.byteOffset, v.byteLength)));
    const copy = measure((i) => view(i).slice().length, indices(values.length));
    const bytes = view(0).length;
    results.push({ payload, codec: 'baseline: one copy (slice)', bytes, encode: copy, decode: copy });
  }
}
process.stderr.write('\n');

const fmt = (x) => (x === null ? '—' : x >= 1e6 ? (x / 1e6).toFixed(2) + ' M' : (x / 1e3).toFixed(1) + ' k');
const cpu = cpus()[0]?.model ?? 'unknown CPU';
console.log(`node ${process.version}, ${cpu} (${cpus().length} CPUs), ${new Date().toISOString()}`);
console.log(`median of ${ROUNDS} rounds of >= ${ROUND_MS} ms; operations per second\n`);
console.log('| payload | codec | bytes | encode ops/s | decode ops/s |');
console.log('| --- | --- | ---: | ---: | ---: |');
for (const r of results) {
  console.log(`| ${r.payload} | ${r.codec} | ${r.bytes} | ${fmt(r.encode)} | ${fmt(r.decode)} |`);
}
console.log('\nswitchboard / msgpackr standard (above 1 = faster):');
for (const payload of Object.keys(payloads)) {
  const ours = results.find((r) => r.payload === payload && r.codec === 'switchboard encodeValue');
  const theirs = results.find((r) => r.payload === payload && r.codec === 'msgpackr standard');
  console.log(
    `  ${payload}: encode ${(ours.encode / theirs.encode).toFixed(2)}, ` +
      `decode ${(ours.decode / theirs.decode).toFixed(2)}`,
  );
}
if (jsonAt > 0) writeFileSync(process.argv[jsonAt + 1], JSON.stringify(results, null, 2) + '\n');
if (sink === 0.5) console.log(sink); // keeps `sink` alive

// Fuzzer for the value decoder (lib/codec.ts), which lives in JavaScript: payloads are opaque
// bytes to the C++ core, so libFuzzer cannot reach it. This is a deterministic mutational fuzzer
// without coverage feedback (see README.md for why): a seeded PRNG mutates the shared vectors
// (test/vectors/), the seed corpus (corpus/value/) and the encodings of random values, and every
// input must satisfy checkValue() at the production limits (DEFAULT_DECODE_LIMITS, what the
// EventBus decodes with):
// - decode(x) either returns a value or throws CodecError E_DECODE, nothing else;
// - decoding x from a view into a larger buffer (as payloads arrive, inside one batch) gives the
//   same outcome as decoding a copy: no read outside the view;
// - a decoded value encodes, and decode(encode(decode(x))) equals decode(x);
// - encoding is stable: encode(decode(encode(v))) is the bytes of encode(v).
//
// CLI: node test/fuzz/value_fuzz.mjs [--seconds N | --runs N] [--seed S] [--artifacts DIR]
//      node test/fuzz/value_fuzz.mjs --replay FILE_OR_DIR...
//      node test/fuzz/value_fuzz.mjs --write-corpus DIR
// Needs `npm run build:ts` first. Prints libFuzzer-like final stats for test/fuzz/run.sh.
import { createHash } from 'node:crypto';
import { mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { CodecError, decode, encode } from '../../dist/esm/codec.js';

const here = fileURLToPath(new URL('.', import.meta.url));
const vectorsDir = join(here, '..', 'vectors');

export class PropertyViolation extends Error {}

// --- The property ----------------------------------------------------------------------------

const bytesOf = (v) =>
  v instanceof ArrayBuffer
    ? new Uint8Array(v)
    : new Uint8Array(v.buffer, v.byteOffset, v.byteLength);

function equalBytes(a, b) {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

const ERROR_FIELDS = ['name', 'message', 'stack', 'code', 'cause', 'errors'];

/** The codec's notion of the same value; returns where they differ, or '' when they do not. */
export function difference(a, b, path = 'value') {
  if (typeof b !== 'object' || b === null) {
    return Object.is(a, b) ? '' : `${path}: ${String(a)} vs ${String(b)}`;
  }
  if (typeof a !== 'object' || a === null) return `${path}: not an object`;
  if (Object.getPrototypeOf(a) !== Object.getPrototypeOf(b)) return `${path}: prototype`;
  if (b instanceof Date) return Object.is(a.getTime(), b.getTime()) ? '' : `${path}: time`;
  if (b instanceof RegExp) {
    return a.source === b.source && a.flags === b.flags ? '' : `${path}: regexp`;
  }
  if (b instanceof ArrayBuffer || ArrayBuffer.isView(b)) {
    return equalBytes(bytesOf(a), bytesOf(b)) ? '' : `${path}: bytes`;
  }
  if (b instanceof Map || b instanceof Set) {
    const x = [...a];
    const y = [...b];
    if (x.length !== y.length) return `${path}: size`;
    for (let i = 0; i < y.length; i++) {
      const d = difference(x[i], y[i], `${path}[entry ${i}]`);
      if (d) return d;
    }
    return '';
  }
  if (b instanceof Error) {
    for (const k of ERROR_FIELDS) {
      if (k in a !== k in b) return `${path}.${k}: present on one side only`;
      if (k in b) {
        const d = difference(a[k], b[k], `${path}.${k}`);
        if (d) return d;
      }
    }
  }
  const ka = Object.keys(a);
  const kb = Object.keys(b);
  if (ka.length !== kb.length || ka.some((k, i) => k !== kb[i])) return `${path}: keys`;
  if (Array.isArray(b) && a.length !== b.length) return `${path}: length`;
  for (const k of kb) {
    const d = difference(a[k], b[k], `${path}[${JSON.stringify(k)}]`);
    if (d) return d;
  }
  return '';
}

function outcome(bytes) {
  try {
    return { value: decode(bytes) };
  } catch (e) {
    if (e instanceof CodecError && e.code === 'E_DECODE') return { error: e };
    throw new PropertyViolation(`decode threw ${e?.name}: ${e?.message} (not CodecError E_DECODE)`);
  }
}

/** Checks every property on one input; returns 'accepted' or 'refused', or throws. */
export function checkValue(input, pad = 0) {
  const bytes = new Uint8Array(input); // its own buffer, like a large payload
  const first = outcome(bytes);
  // The same bytes inside a batch, with other bytes (here: the input's complement) around them.
  const batch = new Uint8Array(pad + bytes.length + pad);
  batch.fill(0xc1);
  batch.set(bytes, pad);
  const inBatch = outcome(batch.subarray(pad, pad + bytes.length));
  if ('error' in first !== 'error' in inBatch) {
    throw new PropertyViolation('decoding inside a batch differs from decoding a copy');
  }
  if ('error' in first) {
    if (first.error.message !== inBatch.error.message) {
      throw new PropertyViolation(
        `inside a batch: "${inBatch.error.message}" vs a copy: "${first.error.message}"`,
      );
    }
    return 'refused';
  }
  const d0 = difference(inBatch.value, first.value);
  if (d0) throw new PropertyViolation(`inside a batch the value differs: ${d0}`);
  let encoded;
  try {
    encoded = encode(first.value);
  } catch (e) {
    throw new PropertyViolation(`a decoded value does not encode: ${e?.message}`);
  }
  const again = outcome(encoded);
  if ('error' in again) {
    throw new PropertyViolation(`encode(decode(x)) does not decode: ${again.error.message}`);
  }
  const d = difference(again.value, first.value);
  if (d) throw new PropertyViolation(`decode(encode(decode(x))) != decode(x): ${d}`);
  if (!equalBytes(encode(again.value), encoded)) {
    throw new PropertyViolation('encode(decode(encode(v))) is not the bytes of encode(v)');
  }
  return 'accepted';
}

// --- Inputs ------------------------------------------------------------------------------------

/** mulberry32: a small seeded PRNG, so a run is repeatable from its seed. */
export function prng(seed) {
  let s = seed >>> 0;
  const next = () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  const int = (n) => Math.floor(next() * n);
  return { next, int, pick: (a) => a[int(a.length)], chance: (p) => next() < p };
}

const INTERESTING_INTS = [0, 1, -1, 127, 128, -32, -33, 255, 256, 65535, 65536, 2 ** 31 - 1,
  -(2 ** 31), 2 ** 32 - 1, 2 ** 32, Number.MAX_SAFE_INTEGER, Number.MIN_SAFE_INTEGER];
const INTERESTING_STRINGS = ['', 'a', '__proto__', 'constructor', 'prototype', 'toString',
  'valueOf', '\ud800', 'é', '😀', 'x'.repeat(31), 'y'.repeat(32), 'z'.repeat(256)];

/** A random value of every kind the codec carries, nested up to `depth`. */
export function randomValue(r, depth = 0) {
  const leaf = depth > 4 || r.chance(0.5);
  if (leaf) {
    switch (r.int(14)) {
      case 0: return null;
      case 1: return undefined;
      case 2: return r.chance(0.5);
      case 3: return r.pick(INTERESTING_INTS);
      case 4: return r.pick([NaN, -0, Infinity, -Infinity, 0.5, 1e300, 5e-324, Math.PI]);
      case 5: return r.pick(INTERESTING_STRINGS);
      case 6: return BigInt(r.pick(INTERESTING_INTS)) * BigInt(r.pick([1, 2 ** 40, -(2 ** 53)]));
      case 7: return new Date(r.pick([0, -1, 1e15, NaN, 8.64e15]));
      case 8: return new RegExp(r.pick(['a+', '^x$', '[', '']).replace('[', '\\['), r.pick(['', 'gi', 'u']));
      case 9: {
        const T = r.pick([Int8Array, Uint8ClampedArray, Int16Array, Uint16Array, Int32Array,
          Uint32Array, Float32Array, Float64Array, BigInt64Array, BigUint64Array]);
        return new T(r.int(5));
      }
      case 10: return new ArrayBuffer(r.int(9));
      case 11: return Buffer.from([r.int(256), r.int(256)]);
      case 12: return new DataView(new ArrayBuffer(r.int(6)));
      default: return new Uint8Array(r.int(40)).fill(r.int(256));
    }
  }
  const n = r.int(4);
  switch (r.int(6)) {
    case 0: return Array.from({ length: n }, () => randomValue(r, depth + 1));
    case 1: {
      const o = {};
      for (let i = 0; i < n; i++) {
        Object.defineProperty(o, r.pick(INTERESTING_STRINGS) + i, {
          value: randomValue(r, depth + 1), enumerable: true, writable: true, configurable: true,
        });
      }
      return o;
    }
    case 2: return new Map(Array.from({ length: n }, () => [randomValue(r, depth + 1), randomValue(r, depth + 1)]));
    case 3: return new Set(Array.from({ length: n }, () => randomValue(r, depth + 1)));
    case 4: {
      const E = r.pick([Error, TypeError, RangeError, SyntaxError]);
      const e = new E(r.pick(INTERESTING_STRINGS), r.chance(0.5) ? { cause: randomValue(r, depth + 1) } : undefined);
      if (r.chance(0.3)) e.code = 'E_X';
      return e;
    }
    default: return new AggregateError([randomValue(r, depth + 1)], 'agg');
  }
}

function nested(header, levels) {
  const b = new Uint8Array(levels + 1).fill(header);
  b[levels] = 0xc0;
  return b;
}

/** The shared vectors, the corpus directories and a few generated extremes. */
export function seedInputs(corpusDirs = []) {
  const seeds = [];
  for (const file of ['values.json', 'decode-only.json', 'invalid.json']) {
    for (const v of JSON.parse(readFileSync(join(vectorsDir, file), 'utf8'))) {
      seeds.push(new Uint8Array(Buffer.from(v.hex, 'hex')));
    }
  }
  for (const dir of corpusDirs) seeds.push(...readInputs(dir).map((f) => f.bytes));
  seeds.push(nested(0x91, 64), nested(0x91, 65), nested(0x91, 100000));
  return seeds;
}

export function readInputs(where) {
  let st;
  try {
    st = statSync(where);
  } catch {
    return [];
  }
  if (st.isFile()) return [{ name: where, bytes: new Uint8Array(readFileSync(where)) }];
  return readdirSync(where)
    .filter((n) => !n.startsWith('.'))
    .sort()
    .map((n) => ({ name: join(where, n), bytes: new Uint8Array(readFileSync(join(where, n))) }));
}

// --- Mutations ---------------------------------------------------------------------------------

const HEADER_BYTES = [0x00, 0x7f, 0x80, 0x8f, 0x90, 0x9f, 0xa0, 0xbf, 0xc0, 0xc1, 0xc2, 0xc3, 0xc4,
  0xc5, 0xc6, 0xc7, 0xc8, 0xc9, 0xca, 0xcb, 0xcc, 0xcd, 0xce, 0xcf, 0xd0, 0xd3, 0xd4, 0xd5, 0xd6,
  0xd7, 0xd8, 0xd9, 0xda, 0xdb, 0xdc, 0xdd, 0xde, 0xdf, 0xe0, 0xff];
const EXT_TYPES = [0xff, 0x00, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 0x7f, 0x80];

function mutate(r, input, pool) {
  let b = Array.from(input);
  const rounds = 1 + r.int(4);
  for (let m = 0; m < rounds; m++) {
    const at = r.int(b.length + 1);
    switch (r.int(11)) {
      case 0: // flip a bit
        if (b.length) b[at % b.length] ^= 1 << r.int(8);
        break;
      case 1: // a msgpack header byte
        if (b.length) b[at % b.length] = r.pick(HEADER_BYTES);
        break;
      case 2: // an ext type after an ext header, or any byte
        if (b.length) b[at % b.length] = r.chance(0.5) ? r.pick(EXT_TYPES) : r.int(256);
        break;
      case 3: // insert bytes
        b.splice(at, 0, ...Array.from({ length: 1 + r.int(4) }, () => r.int(256)));
        break;
      case 4: // delete a range
        b.splice(at, 1 + r.int(8));
        break;
      case 5: { // duplicate a range
        const len = 1 + r.int(16);
        b.splice(at, 0, ...b.slice(at, at + len));
        break;
      }
      case 6: { // a length or count field set to an edge: 0, 1, +-1..3, all ones
        if (b.length < 2) break;
        const width = r.pick([1, 2, 4]);
        const p = at % b.length;
        let v = 0;
        for (let i = 0; i < width && p + i < b.length; i++) v = v * 256 + b[p + i];
        const max = 2 ** (8 * width) - 1;
        v = r.pick([0, 1, max, v + 1, v - 1, v + 3, v - 3, v + 2]);
        v = Math.min(Math.max(v, 0), max);
        for (let i = width - 1; i >= 0; i--) {
          if (p + i < b.length) b[p + i] = v % 256;
          v = Math.floor(v / 256);
        }
        break;
      }
      case 7: { // splice in part of another input
        const other = r.pick(pool);
        const from = r.int(other.length + 1);
        b.splice(at, r.int(4), ...other.slice(from, from + 1 + r.int(32)));
        break;
      }
      case 8: // wrap in a container: array of one, map of one, ext 5/6 style
        b = r.pick([[0x91, ...b], [0x81, 0xa1, 0x6b, ...b], [0x92, ...b, ...b], [0x81, ...b, 0xc0]]);
        break;
      case 9: // truncate
        b.length = at;
        break;
      default: // an interesting string header and body
        b.splice(at, 0, 0xa9, ...Buffer.from('__proto__'));
        break;
    }
    if (b.length > 4096) b.length = 4096;
  }
  return new Uint8Array(b);
}

// --- Running ----------------------------------------------------------------------------------

function failsSameWay(bytes, message) {
  try {
    checkValue(bytes, 3);
    return false;
  } catch (e) {
    return e instanceof PropertyViolation ? e.message.split(':')[0] === message.split(':')[0] : true;
  }
}

/** Greedy minimisation: drop ranges, then zero bytes, while the same property still breaks. */
export function minimise(bytes, message) {
  let best = bytes;
  for (let chunk = best.length >> 1; chunk >= 1; chunk >>= 1) {
    for (let at = 0; at + chunk <= best.length; ) {
      const cand = new Uint8Array([...best.slice(0, at), ...best.slice(at + chunk)]);
      if (failsSameWay(cand, message)) best = cand;
      else at += chunk;
    }
  }
  return best;
}

/**
 * Runs for `seconds` (or `runs` inputs) from `seed`. Returns the stats; on a violation, writes
 * the minimised input to `artifacts` and returns it as `crash`.
 */
export function fuzz({ seconds = 0, runs = 0, seed = 1, corpusDirs = [], artifacts = '' } = {}) {
  const r = prng(seed);
  const pool = seedInputs(corpusDirs);
  const generated = 200;
  for (let i = 0; i < generated; i++) {
    try {
      pool.push(encode(randomValue(r)));
    } catch (e) {
      throw new PropertyViolation(`a generated value does not encode: ${e?.message}`);
    }
  }
  const seeds = pool.length;
  const started = process.hrtime.bigint();
  const deadline = started + BigInt(Math.round(seconds * 1e9));
  let execs = 0;
  let accepted = 0;
  const keep = new Set(); // inputs the decoder accepted: the fuzzer mutates from them too
  for (;;) {
    if (runs ? execs >= runs : (execs & 255) === 0 && process.hrtime.bigint() >= deadline) break;
    const input = execs < seeds ? pool[execs] : mutate(r, r.pick(pool), pool);
    execs++;
    try {
      if (checkValue(input, execs < seeds ? 0 : 1 + r.int(8)) === 'accepted') {
        accepted++;
        const key = Buffer.from(input).toString('latin1');
        if (input.length <= 256 && !keep.has(key) && keep.size < 5000) {
          keep.add(key);
          pool.push(input);
        }
      }
    } catch (e) {
      const message = e instanceof PropertyViolation ? e.message : `harness: ${e?.stack ?? e}`;
      const small = minimise(input, message);
      let file = '';
      if (artifacts) {
        mkdirSync(artifacts, { recursive: true });
        file = join(artifacts, 'crash-' + createHash('sha1').update(small).digest('hex'));
        writeFileSync(file, small);
      }
      return { execs, accepted, seconds: elapsed(started), corpus: pool.length, crash: { message, file, hex: Buffer.from(small).toString('hex'), seed, iteration: execs } };
    }
  }
  return { execs, accepted, seconds: elapsed(started), corpus: pool.length };
}

const elapsed = (since) => Number(process.hrtime.bigint() - since) / 1e9;

/** Writes `count` generated seeds (encodings of random values) into `dir`, for corpus/value. */
export function writeCorpus(dir, count = 40, seed = 7) {
  const r = prng(seed);
  mkdirSync(dir, { recursive: true });
  for (let i = 0; i < count; i++) {
    const bytes = encode(randomValue(r));
    writeFileSync(join(dir, `generated-${String(i).padStart(2, '0')}`), bytes);
  }
  writeFileSync(join(dir, 'nested-arrays-64'), nested(0x91, 64));
  writeFileSync(join(dir, 'nested-maps-65'), Buffer.concat([Buffer.from('81a16b'.repeat(65), 'hex'), Buffer.from([0xc0])]));
  writeFileSync(join(dir, 'proto-key'), Buffer.from('81a95f5f70726f746f5f5f81a178c3', 'hex'));
  writeFileSync(join(dir, 'array-count-over-bytes'), Buffer.from('dd7fffffffc0', 'hex'));
}

// --- CLI ----------------------------------------------------------------------------------------

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const args = process.argv.slice(2);
  const opt = (name, dflt) => {
    const i = args.indexOf(name);
    return i >= 0 ? args[i + 1] : dflt;
  };
  if (args[0] === '--write-corpus') {
    writeCorpus(args[1]);
  } else if (args[0] === '--replay') {
    let n = 0;
    for (const where of args.slice(1)) {
      for (const { name, bytes } of readInputs(where)) {
        try {
          checkValue(bytes, 3);
        } catch (e) {
          console.error(`${name}: ${e.message}`);
          process.exit(1);
        }
        n++;
      }
    }
    console.log(`replayed ${n} inputs`);
  } else {
    const seed = Number(opt('--seed', '1'));
    const res = fuzz({
      seconds: Number(opt('--seconds', '0')),
      runs: Number(opt('--runs', '0')),
      seed,
      corpusDirs: [join(here, 'corpus', 'value'), join(here, 'crashes', 'value')],
      artifacts: opt('--artifacts', ''),
    });
    // The same names as libFuzzer's -print_final_stats=1, so run.sh parses both alike.
    console.log(`stat::number_of_executed_units: ${res.execs}`);
    console.log(`stat::average_exec_per_sec: ${Math.round(res.execs / res.seconds)}`);
    console.log(`stat::accepted_inputs: ${res.accepted}`);
    console.log(`stat::corpus_size: ${res.corpus}`);
    console.log(`stat::peak_rss_mb: ${Math.round(process.resourceUsage().maxRSS / 1024)}`);
    if (res.crash) {
      console.error(`value: property broken (seed ${seed}, input ${res.crash.iteration}): ${res.crash.message}`);
      console.error(`value: minimised input (hex) ${res.crash.hex}${res.crash.file ? ', saved as ' + res.crash.file : ''}`);
      process.exit(1);
    }
  }
}

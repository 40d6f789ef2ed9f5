// Promise (lib/codec.ts, the interning of short strings): the decoder's cache of map keys and
// short string values changes no decoded value, whatever order, count, encoding or hostility the
// maps come in, and it holds a fixed amount of memory however many distinct strings a peer sends.
// Each test decodes the same kind of map more than once, so that the second and later decodes
// take their strings from the cache that the first one filled. Run after `npm run build:ts`.
import assert from 'node:assert/strict';
import { runInNewContext } from 'node:vm';
import { setFlagsFromString } from 'node:v8';
import { describe, it } from 'node:test';
import { CodecError, decode, encode } from '../../dist/esm/codec.js';

const T = { timeout: 60_000 };
const unhex = (h) => new Uint8Array(Buffer.from(h.replace(/\s+/g, ''), 'hex'));

/** decode() of the bytes, from a view inside a larger buffer, as payloads arrive. */
function decodeInBatch(bytes) {
  const batch = new Uint8Array(bytes.length + 8).fill(0xc1); // 0xc1 is never valid msgpack
  batch.set(bytes, 4);
  return decode(batch.subarray(4, 4 + bytes.length));
}

/** Asserts that `out` has exactly the keys of `expected`, in its order, with its values. */
function sameObject(out, expected, what) {
  assert.equal(Object.getPrototypeOf(out), Object.prototype, `${what}: a plain object`);
  assert.deepEqual(Object.keys(out), Object.keys(expected), `${what}: keys in order`);
  assert.deepEqual(out, expected, what);
}

describe('maps with keys seen before decode like any other', T, () => {
  it('every map of a repeated kind gets its own values', () => {
    for (let i = 0; i < 200; i++) {
      const v = { id: i, ts: 1_733_000_000_000 + i, name: `p${i % 3}`, values: [i, 2, 3], ok: i % 2 === 0, note: 'hello world' };
      sameObject(decodeInBatch(encode(v)), v, `map ${i}`);
    }
  });

  it('the same keys in another order keep that order', () => {
    const orders = [
      { a: 1, b: 2, c: 3 },
      { c: 1, b: 2, a: 3 },
      { a: 1, c: 2, b: 3 },
      { b: 1, a: 2, c: 3 },
    ];
    for (let round = 0; round < 50; round++) {
      for (const v of orders) sameObject(decodeInBatch(encode(v)), v, JSON.stringify(v));
    }
  });

  it('maps that share a prefix of keys, or differ in count, keep their own keys', () => {
    const known = { alpha: 1, beta: 2, gamma: 3, delta: 4 };
    const others = [
      { alpha: 1, beta: 2, other: 3, delta: 4 }, // diverges at the third key
      { alpha: 1, beta: 2, gamma: 3, delt: 4 }, // the last key is a prefix of the known one
      { alpha: 1, beta: 2, gamma: 3, deltaa: 4 }, // ... or longer
      { alpha: 1, beta: 2, gamma: 3 }, // fewer keys
      { alpha: 1, beta: 2, gamma: 3, delta: 4, epsilon: 5 }, // more keys
      { beta: 1, alpha: 2, gamma: 3, delta: 4 }, // another first key
      {}, // none
    ];
    for (let round = 0; round < 20; round++) {
      sameObject(decodeInBatch(encode(known)), known, 'the known keys');
      for (const v of others) sameObject(decodeInBatch(encode(v)), v, JSON.stringify(v));
    }
  });

  it('a key written as str8, as a number or as invalid UTF-8 is not mistaken for a known key', () => {
    for (let round = 0; round < 3; round++) {
      sameObject(decode(unhex('82 a161 01 a162 02')), { a: 1, b: 2 }, 'fixstr keys (cached)');
      sameObject(decode(unhex('82 a161 01 d90162 02')), { a: 1, b: 2 }, 'the second key as str8');
      sameObject(decode(unhex('82 a161 01 62 02')), { a: 1, 98: 2 }, 'the second key as the number 98');
      sameObject(decode(unhex('82 a161 01 a1ff 02')), { a: 1, '\ufffd': 2 }, 'invalid UTF-8');
      sameObject(decode(unhex('82 a161 01 a3efbfbd 02')), { a: 1, '\ufffd': 2 }, 'U+FFFD itself');
    }
  });

  it('a repeated key keeps its last value, as key by key', () => {
    for (let round = 0; round < 3; round++) {
      sameObject(decode(unhex('83 a161 01 a161 02 a162 03')), { a: 2, b: 3 }, 'a, a, b');
    }
  });

  it('maps nested between the keys of another, with ever new keys, do not disturb its keys', () => {
    // The inner maps' new keys take cache slots while the outer map is being decoded.
    for (let i = 0; i < 300; i++) {
      const v = { head: { [`k${i}`]: i, [`j${i}`]: { [`x${i}`]: 1, y: [i] } }, tail: { [`m${i}`]: 'v', n: i } };
      sameObject(decodeInBatch(encode(v)), v, `round ${i}`);
    }
  });

  it('deeply nested maps of repeated keys decode the same', () => {
    let v = { leaf: 'x', n: 1 };
    for (let d = 0; d < 40; d++) v = { down: v, n: d };
    for (let round = 0; round < 3; round++) assert.deepEqual(decode(encode(v)), v);
  });
});

describe('keys never reach a prototype, when cached either', T, () => {
  it('__proto__, constructor and prototype after cached keys stay own data properties', () => {
    const known = { a: 1, b: 2, c: 3 };
    for (const key of ['__proto__', 'constructor', 'prototype']) {
      for (let round = 0; round < 3; round++) {
        decode(encode(known)); // a, b and c are cached
        const out = decode(encode(JSON.parse(`{"a": 1, "b": 2, "${key}": {"polluted": true}}`)));
        assert.equal(Object.getPrototypeOf(out), Object.prototype, key);
        assert.ok(Object.hasOwn(out, key), `${key} is an own property`);
        assert.deepEqual(Object.getOwnPropertyDescriptor(out, key).value, { polluted: true });
        assert.equal(out.polluted, undefined, key);
        assert.equal({}.polluted, undefined, 'Object.prototype is untouched');
      }
    }
  });

  it('such a key decoded again and again, from the cache, stays an own property', () => {
    const hostile = encode(JSON.parse('{"x": 1, "__proto__": {"polluted": true}}'));
    for (let round = 0; round < 10; round++) {
      const out = decode(hostile);
      assert.ok(Object.hasOwn(out, '__proto__'), `round ${round}`);
      assert.equal(Object.getPrototypeOf(out), Object.prototype, `round ${round}`);
      assert.equal(out.polluted, undefined, `round ${round}`);
    }
  });
});

describe('cached keys are still bounds-checked', T, () => {
  it('a map cut anywhere, inside a cached key too, is refused', () => {
    const whole = encode({ name: 1, value: 2 });
    decode(whole);
    decode(whole); // cached
    for (let cut = 1; cut < whole.length; cut++) {
      // A view of the first bytes: the rest of the key is there after the view's end.
      assert.throws(() => decode(whole.subarray(0, cut)), (e) => e instanceof CodecError && e.code === 'E_DECODE', `cut at ${cut}`);
    }
  });
});

describe('short strings decode the same from the cache', T, () => {
  const textDecoder = new TextDecoder();

  it('every byte string of 1 to 20 bytes, valid or not, decodes as TextDecoder decodes it, twice', () => {
    let seed = 7;
    const random = () => ((seed = (Math.imul(seed, 1103515245) + 12345) >>> 0) >>> 8) & 0xff;
    const samples = [];
    for (let i = 0; i < 4000; i++) {
      const n = 1 + (i % 20);
      const bytes = new Uint8Array(n);
      // Mostly ASCII, some multi-byte and some invalid sequences.
      for (let j = 0; j < n; j++) bytes[j] = i % 3 === 0 ? random() : random() & 0x7f;
      samples.push(bytes);
    }
    for (let round = 0; round < 2; round++) {
      for (const bytes of samples) {
        const packed = new Uint8Array(1 + bytes.length);
        packed[0] = 0xa0 | bytes.length;
        packed.set(bytes, 1);
        const want = textDecoder.decode(bytes);
        assert.equal(decodeInBatch(packed), want, `value ${Buffer.from(bytes).toString('hex')}`);
        const asKey = new Uint8Array(packed.length + 2);
        asKey[0] = 0x81;
        asKey.set(packed, 1);
        assert.deepEqual(Object.keys(decodeInBatch(asKey)), [want], `key ${Buffer.from(bytes).toString('hex')}`);
      }
    }
  });
});

describe('the cache holds a fixed amount of memory', T, () => {
  it('100000 maps with new keys and new short values retain less than 8 MiB', (t) => {
    setFlagsFromString('--expose-gc');
    const gc = runInNewContext('gc');
    // Warm up whatever is allocated once (the cache itself, compiled code).
    for (let i = 0; i < 2000; i++) decode(encode({ [`w${i}`]: `v${i}` }));
    gc();
    const before = process.memoryUsage().heapUsed;
    let sink = 0;
    for (let i = 0; i < 100_000; i++) {
      // Four keys and two values no map had before: caches without a bound would keep 600000 strings, ~20 MiB.
      const v = { [`key-a-${i}`]: `val-a-${i}`, [`key-b-${i}`]: i, [`key-c-${i}`]: `val-c-${i}`, [`key-d-${i}`]: i };
      sink += Object.keys(decode(encode(v))).length;
    }
    assert.equal(sink, 4 * 100_000);
    gc();
    const grown = process.memoryUsage().heapUsed - before;
    t.diagnostic(`heap grew by ${(grown / 1048576).toFixed(1)} MiB`);
    assert.ok(grown < 8 << 20, `the heap grew by ${grown} bytes`);
  });
});

describe('the reader kept for a batch reads each payload from its own offset', T, () => {
  it('payloads in a small batch, in a batch over 1 MiB, and in one inside beginBatch()', async () => {
    const { beginBatch, endBatch } = await import('../../dist/esm/codec.js');
    const values = [{ a: 1, note: 'x' }, ['y', 2], 'hello world', { a: 2, note: 'zz' }];
    const encodings = values.map((v) => encode(v));
    for (const size of [256, 3 << 20]) {
      for (const inBatch of [false, true]) {
        // The payloads sit at odd offsets of one buffer, as frames of a received batch do.
        const batch = new Uint8Array(size).fill(0xc1);
        const views = [];
        let at = 7;
        for (const e of encodings) {
          batch.set(e, at);
          views.push(batch.subarray(at, at + e.length));
          at += e.length + 3;
        }
        if (inBatch) beginBatch();
        try {
          for (let round = 0; round < 2; round++) {
            views.forEach((view, i) => assert.deepEqual(decode(view), values[i], `${size} bytes, in a batch: ${inBatch}, payload ${i}`));
          }
        } finally {
          if (inBatch) endBatch();
        }
      }
    }
  });
});

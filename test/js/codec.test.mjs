// Promise (DESIGN.md, "Values that cross"; docs/PROTOCOL.md section 10): lib/codec.ts writes every
// value of the table as the exact bytes of the shared vectors (test/vectors/, which the C++ tests
// also read), reads them back with fidelity, refuses what cannot cross with the path of the bad
// value, and decodes hostile input within its limits, allocating nothing a short input cannot
// back. Run after `npm run build:ts`.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { runInNewContext } from 'node:vm';
import { describe, it } from 'node:test';
import { ByteWriter } from '../../dist/esm/bytes.js';
import {
  CodecError,
  DEFAULT_DECODE_LIMITS,
  decode,
  encode,
  encodeValue,
} from '../../dist/esm/codec.js';

const vectors = (file) => JSON.parse(readFileSync(new URL(`../vectors/${file}`, import.meta.url)));
const values = vectors('values.json');
const decodeOnly = vectors('decode-only.json');
const invalid = vectors('invalid.json');

const hex = (bytes) => Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('hex');
const unhex = (h) => new Uint8Array(Buffer.from(h, 'hex'));
const evaluate = (js) => new Function('return (' + js + ')')();
const T = { timeout: 30_000 };

// --- Deep equality with the codec's notion of "the same value" ---------------------------------------

const ERROR_FIELDS = new Set(['name', 'message', 'stack', 'code', 'cause', 'errors']);
const bytesOf = (v) => Buffer.from(v instanceof ArrayBuffer ? v : v.buffer, v.byteOffset ?? 0, v.byteLength);

/**
 * Asserts that `actual` is the value `expected` describes: NaN and -0 exactly (Object.is), Dates
 * by time, typed arrays by class and bytes, Buffers as Buffers, Errors by class, name, message,
 * stack, remoteClass, code, cause, errors and own enumerable properties, objects by their own keys
 * in order.
 */
function same(actual, expected, path = 'value') {
  if (typeof expected !== 'object' || expected === null) {
    assert.ok(Object.is(actual, expected), `${path}: ${String(actual)} is not ${String(expected)}`);
    return;
  }
  assert.equal(typeof actual, 'object', `${path}: not an object`);
  assert.notEqual(actual, null, `${path}: null`);
  if (expected instanceof Date) {
    assert.ok(actual instanceof Date, `${path}: not a Date`);
    assert.ok(Object.is(actual.getTime(), expected.getTime()), `${path}: ${actual.getTime()} ms`);
  } else if (expected instanceof Error) {
    assert.ok(actual instanceof Error, `${path}: not an Error`);
    assert.equal(actual.constructor, expected.constructor, `${path}: class`);
    assert.equal(actual.name, expected.name, `${path}.name`);
    assert.equal(actual.message, expected.message, `${path}.message`);
    assert.equal(actual.stack, expected.stack, `${path}.stack`);
    // The sender's class where it was not rebuilt: own, not enumerable.
    const classOf = (e) => Object.getOwnPropertyDescriptor(e, 'remoteClass');
    assert.equal(classOf(actual)?.value, classOf(expected)?.value, `${path}.remoteClass`);
    assert.equal(classOf(actual)?.enumerable, classOf(expected)?.enumerable, `${path}.remoteClass enumerable`);
    for (const k of ['code', 'cause', 'errors']) {
      assert.equal(k in actual, k in expected, `${path}.${k} present`);
      if (k in expected) same(actual[k], expected[k], `${path}.${k}`);
    }
    const props = (e) => Object.keys(e).filter((k) => !ERROR_FIELDS.has(k));
    assert.deepEqual(props(actual), props(expected), `${path}: own properties`);
    for (const k of props(expected)) same(actual[k], expected[k], `${path}.${k}`);
  } else if (expected instanceof Map) {
    assert.ok(actual instanceof Map, `${path}: not a Map`);
    const a = [...actual];
    const e = [...expected];
    assert.equal(a.length, e.length, `${path}.size`);
    e.forEach(([k, v], i) => {
      same(a[i][0], k, `${path}.keys()[${i}]`);
      same(a[i][1], v, `${path}.values()[${i}]`);
    });
  } else if (expected instanceof Set) {
    assert.ok(actual instanceof Set, `${path}: not a Set`);
    same([...actual], [...expected], `${path} (as an array)`);
  } else if (expected instanceof RegExp) {
    assert.ok(actual instanceof RegExp, `${path}: not a RegExp`);
    assert.equal(actual.source, expected.source);
    assert.equal(actual.flags, expected.flags);
  } else if (expected instanceof ArrayBuffer) {
    assert.ok(actual instanceof ArrayBuffer, `${path}: not an ArrayBuffer`);
    assert.ok(bytesOf(actual).equals(bytesOf(expected)), `${path}: bytes`);
  } else if (ArrayBuffer.isView(expected)) {
    assert.equal(actual.constructor, expected.constructor, `${path}: class`);
    assert.equal(Buffer.isBuffer(actual), Buffer.isBuffer(expected), `${path}: Buffer or not`);
    assert.ok(bytesOf(actual).equals(bytesOf(expected)), `${path}: bytes`);
  } else if (Array.isArray(expected)) {
    assert.ok(Array.isArray(actual), `${path}: not an array`);
    assert.equal(actual.length, expected.length, `${path}.length`);
    for (let i = 0; i < expected.length; i++) same(actual[i], expected[i], `${path}[${i}]`);
  } else {
    assert.equal(Object.getPrototypeOf(actual), Object.prototype, `${path}: a plain object`);
    assert.deepEqual(Object.keys(actual), Object.keys(expected), `${path}: keys`);
    for (const k of Object.keys(expected)) same(actual[k], expected[k], `${path}.${k}`);
  }
}

function refusal(fn) {
  try {
    fn();
  } catch (e) {
    assert.ok(e instanceof CodecError, `a CodecError, got ${e}`);
    return e;
  }
  assert.fail('did not throw');
}

// --- The shared vectors ------------------------------------------------------------------------------

describe('shared vectors: values.json', T, () => {
  it('covers at least 60 values, each with a name, an expression and lowercase hex', () => {
    assert.ok(values.length >= 60, `${values.length} vectors`);
    for (const v of values) {
      assert.equal(typeof v.name, 'string');
      assert.equal(typeof v.js, 'string');
      assert.match(v.hex, /^([0-9a-f]{2})+$/, v.name);
    }
    assert.equal(new Set(values.map((v) => v.name)).size, values.length, 'names are unique');
  });

  for (const v of values) {
    it(`${v.name}: encodes to the shared bytes, decodes back, and round-trips again`, () => {
      const value = evaluate(v.js);
      assert.equal(hex(encode(value)), v.hex, 'encode(js) is the vector');
      const decoded = decode(unhex(v.hex));
      same(decoded, v.decoded === undefined ? value : evaluate(v.decoded), 'decode(hex)');
      same(decode(encode(decoded)), decoded, 'decode(encode(decode(hex)))');
    });
  }

  it('every vector is written in place after other bytes, as lib/wire.ts writes payloads', () => {
    const w = new ByteWriter(16);
    for (const v of values) {
      w.reset();
      w.u8(0x77);
      encodeValue(w, evaluate(v.js));
      assert.equal(hex(w.view_()), '77' + v.hex, v.name);
    }
  });

  it('every vector decodes from a view into a larger batch without reading outside it', () => {
    for (const v of values) {
      const bytes = unhex(v.hex);
      const batch = new Uint8Array(bytes.length + 7).fill(0xc1); // 0xc1 is never valid
      batch.set(bytes, 3);
      const view = batch.subarray(3, 3 + bytes.length);
      same(decode(view), decode(bytes), v.name);
      same(decode(Buffer.from(view)), decode(bytes), `${v.name} (from a Buffer)`);
    }
  });
});

describe('shared vectors: decode-only.json (other encoders\' forms)', T, () => {
  for (const v of decodeOnly) {
    it(`${v.name}: decodes to the value, which round-trips`, () => {
      const decoded = decode(unhex(v.hex));
      same(decoded, evaluate(v.js), 'decode(hex)');
      same(decode(encode(decoded)), decoded, 'decode(encode(decode(hex)))');
    });
  }
});

describe('shared vectors: invalid.json (hostile and broken input)', T, () => {
  for (const v of invalid) {
    if (v.js !== undefined) {
      it(`${v.name}: decodes with replacement characters`, () => {
        same(decode(unhex(v.hex)), evaluate(v.js));
      });
      continue;
    }
    it(`${v.name}: is refused with CodecError E_DECODE`, () => {
      const err = refusal(() => decode(unhex(v.hex)));
      assert.equal(err.code, 'E_DECODE', err.message);
      // The same bytes inside a batch followed by valid data: the view's end is the end.
      const batch = unhex(v.hex + 'c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0');
      const again = refusal(() => decode(batch.subarray(0, v.hex.length / 2)));
      assert.equal(again.code, 'E_DECODE');
      assert.equal(again.message, err.message, 'offsets count from the start of the view');
    });
  }

  it('100000 nested arrays are refused at the depth limit, not by a stack overflow', () => {
    const err = refusal(() => decode(unhex('91'.repeat(100000) + 'c0')));
    assert.equal(err.code, 'E_DECODE');
    assert.match(err.message, /nesting deeper than 64/);
  });
});

// --- Refusals name the path --------------------------------------------------------------------------

describe('what cannot cross is refused with the path of the bad value', T, () => {
  const cases = [
    ['a function in an object', { user: { onClick() {} } }, 'payload.user.onClick', /is a function; functions cannot cross processes$/],
    ['a function at the root', () => 1, 'payload', /is a function/],
    ['a symbol in an array in an object', { list: [1, { s: Symbol('x') }] }, 'payload.list[1].s', /is a symbol; symbols cannot cross processes$/],
    ['a function as a Map value', { m: new Map([['theme', () => 1]]) }, 'payload.m.get("theme")', /is a function/],
    ['a function as a Map value under an object key', { m: new Map([[{}, () => 1]]) }, 'payload.m.get(<key 0>)', /is a function/],
    ['a symbol as a Map key', { m: new Map([[1, 1], [Symbol('k'), 2]]) }, 'payload.m.keys()[1]', /is a symbol/],
    ['a function in a Set', new Set([1, () => 1]), 'payload.values()[1]', /is a function/],
    ['a function as an odd property name', { 'a b': { 'x-y': () => 1 } }, 'payload["a b"]["x-y"]', /is a function/],
    ['a function in an Error property', { err: Object.assign(new Error('x'), { retry: () => 1 }) }, 'payload.err.retry', /is a function/],
    ['a function in an Error cause', { err: new Error('x', { cause: { fn() {} } }) }, 'payload.err.cause.fn', /is a function/],
    ['a WeakMap', { w: new WeakMap() }, 'payload.w', /is a WeakMap; WeakMaps cannot cross processes/],
    ['a WeakSet', [new WeakSet()], 'payload[0]', /is a WeakSet/],
    ['a Promise', { p: Promise.resolve(1) }, 'payload.p', /is a Promise; promises cannot cross processes/],
    ['a WeakRef', { r: new WeakRef({}) }, 'payload.r', /is a WeakRef/],
    ['a SharedArrayBuffer', { s: new SharedArrayBuffer(8) }, 'payload.s', /is a SharedArrayBuffer; shared memory cannot cross processes/],
  ];
  for (const [what, value, path, message] of cases) {
    it(`${what} is refused as ${path}`, () => {
      const err = refusal(() => encode(value));
      assert.equal(err.code, 'E_UNSERIALIZABLE');
      assert.equal(err.path, path);
      assert.equal(err.name, 'CodecError');
      assert.ok(err.message.startsWith(path + ' '), err.message);
      assert.match(err.message, message);
    });
  }

  it('a cycle is refused naming the path and where it points back to', () => {
    const a = { b: {} };
    a.b.back = a;
    const err = refusal(() => encode({ a }));
    assert.equal(err.message, 'payload.a.b.back refers back to payload.a (a cycle)');
    assert.equal(err.path, 'payload.a.b.back');
  });

  it('cycles through arrays, Map values and Error causes are refused too', () => {
    const list = [1];
    list.push({ list });
    assert.equal(refusal(() => encode({ list })).message, 'payload.list[1].list refers back to payload.list (a cycle)');
    const m = new Map();
    m.set('self', { m });
    assert.equal(refusal(() => encode(m)).message, 'payload.get("self").m refers back to payload (a cycle)');
    const e = new Error('loop');
    e.cause = { e };
    assert.equal(refusal(() => encode({ e })).message, 'payload.e.cause.e refers back to payload.e (a cycle)');
  });

  it('a shared reference that is not a cycle is written twice', () => {
    const shared = { v: 1 };
    const out = decode(encode({ a: shared, b: shared, list: [shared, shared] }));
    same(out, { a: { v: 1 }, b: { v: 1 }, list: [{ v: 1 }, { v: 1 }] });
    assert.notEqual(out.a, out.b);
  });

  it('the root name given to encodeValue starts the path', () => {
    const err = refusal(() => encodeValue(new ByteWriter(), { fn() {} }, 'result'));
    assert.equal(err.message, 'result.fn is a function; functions cannot cross processes');
  });

  it('a refused encodeValue leaves the writer where it was', () => {
    const w = new ByteWriter(8);
    w.u8(1);
    encodeValue(w, 'ok');
    const before = hex(w.view_());
    refusal(() => encodeValue(w, { big: 'x'.repeat(5000), bad: Symbol('s') }));
    assert.equal(hex(w.view_()), before);
    encodeValue(w, 2);
    assert.equal(hex(w.view_()), before + '02');
  });

  it('nesting deeper than the decoder allows is refused when encoding (64 levels pass)', () => {
    const nest = (n) => {
      let v = null;
      for (let i = 0; i < n; i++) v = [v];
      return v;
    };
    same(decode(encode(nest(64))), nest(64));
    const err = refusal(() => encode({ deep: nest(64) }));
    assert.match(err.message, /nested deeper than 64 levels/);
    assert.ok(err.path.startsWith('payload.deep[0][0]'));
  });
});

// --- Prototype safety --------------------------------------------------------------------------------

describe('keys never reach a prototype', T, () => {
  it('__proto__, constructor and prototype keys become own data properties', () => {
    const bytes = encode(JSON.parse('{"__proto__": {"polluted": true}, "constructor": 1, "prototype": [2]}'));
    const out = decode(bytes);
    assert.equal(Object.getPrototypeOf(out), Object.prototype);
    assert.ok(Object.hasOwn(out, '__proto__'));
    assert.deepEqual(Object.getOwnPropertyDescriptor(out, '__proto__').value, { polluted: true });
    assert.equal(out.polluted, undefined);
    assert.equal(out.constructor, 1);
    assert.deepEqual(out.prototype, [2]);
    assert.equal({}.polluted, undefined, 'Object.prototype is untouched');
  });

  it('a __proto__ key deep inside an Error and a Map stays an own property', () => {
    const e = new Error('x');
    Object.defineProperty(e, '__proto__', { value: { evil: 1 }, enumerable: true });
    const out = decode(encode(new Map([['e', e]]))).get('e');
    assert.equal(Object.getPrototypeOf(out), Error.prototype);
    assert.ok(Object.hasOwn(out, '__proto__'));
    assert.equal(out.evil, undefined);
  });

  it('a non-string map key becomes String(key)', () => {
    same(decode(unhex('8301a16102a162c0a163')), { 1: 'a', 2: 'b', null: 'c' });
  });

  it('a map key that cannot become a string is refused, not thrown as a TypeError', () => {
    // Key: a map {toString: 1}, so String(key) finds no function.
    const err = refusal(() => decode(unhex('8181a8746f537472696e6701c0')));
    assert.equal(err.code, 'E_DECODE');
  });
});

// --- Limits ------------------------------------------------------------------------------------------

describe('decoding stays within its limits', T, () => {
  it('the default limits are depth 64 (at least 32) and 1000000 values', () => {
    assert.equal(DEFAULT_DECODE_LIMITS.maxDepth, 64);
    assert.ok(DEFAULT_DECODE_LIMITS.maxDepth >= 32);
    assert.equal(DEFAULT_DECODE_LIMITS.maxNodes, 1_000_000);
    assert.ok(Object.isFrozen(DEFAULT_DECODE_LIMITS));
  });

  it('64 nested arrays decode, 65 are refused', () => {
    assert.ok(Array.isArray(decode(unhex('91'.repeat(64) + 'c0'))));
    const err = refusal(() => decode(unhex('91'.repeat(65) + 'c0')));
    assert.equal(err.code, 'E_DECODE');
    assert.match(err.message, /nesting deeper than 64/);
  });

  it('ext containers count as one level each, like arrays and maps', () => {
    // 63 arrays around a Set of one element: 64 levels.
    assert.ok(decode(unhex('91'.repeat(63) + 'd50691c0')));
    refusal(() => decode(unhex('91'.repeat(64) + 'd50691c0')));
    // An Error's props map is one level below the Error.
    const e = Object.assign(new Error('x'), { p: 1 });
    delete e.stack;
    const bytes = hex(encode(e));
    assert.ok(decode(unhex(bytes), { maxDepth: 2, maxNodes: 100 }));
    refusal(() => decode(unhex(bytes), { maxDepth: 1, maxNodes: 100 }));
  });

  it('a lower maxDepth is honoured', () => {
    const limits = { maxDepth: 2, maxNodes: 100 };
    assert.ok(decode(unhex('9191c0'), limits));
    assert.match(refusal(() => decode(unhex('919191c0'), limits)).message, /nesting deeper than 2/);
  });

  it('maxNodes counts every element, key and value', () => {
    const three = encode([1, 2, 3]); // 4 values with the array
    assert.ok(decode(three, { maxDepth: 64, maxNodes: 4 }));
    const err = refusal(() => decode(three, { maxDepth: 64, maxNodes: 3 }));
    assert.match(err.message, /more than 3 values/);
    const map = encode({ a: 1, b: 2 }); // 5 values
    assert.ok(decode(map, { maxDepth: 64, maxNodes: 5 }));
    refusal(() => decode(map, { maxDepth: 64, maxNodes: 4 }));
  });

  it('the default maxNodes refuses an array of 1000000 elements (1000001 values)', () => {
    const bytes = new Uint8Array(5 + 1_000_000).fill(0xc0);
    bytes.set([0xdd, 0x00, 0x0f, 0x42, 0x40]);
    assert.match(refusal(() => decode(bytes)).message, /more than 1000000 values/);
    const fits = bytes.subarray(0, bytes.length - 1); // 999999 elements: 1000000 values
    fits.set([0xdd, 0x00, 0x0f, 0x42, 0x3f]);
    assert.equal(decode(fits).length, 999_999);
  });

  it('maxBytes refuses a longer input before reading it', () => {
    const bytes = encode('x'.repeat(100));
    assert.match(refusal(() => decode(bytes, { maxDepth: 64, maxNodes: 10, maxBytes: 50 })).message, /maxBytes/);
    assert.equal(decode(bytes, { maxDepth: 64, maxNodes: 10, maxBytes: 102 }).length, 100);
  });

  it('malformed limits are a RangeError naming the limit', () => {
    assert.throws(() => decode(encode(1), { maxDepth: -1, maxNodes: 10 }), /"maxDepth"/);
    assert.throws(() => decode(encode(1), { maxDepth: 8, maxNodes: 0.5 }), /"maxNodes"/);
  });

  it('decode() of something that is not a Uint8Array is a TypeError', () => {
    assert.throws(() => decode('c0'), TypeError);
    assert.throws(() => decode(new ArrayBuffer(1)), TypeError);
  });

  it('declared lengths are checked against the bytes left before anything is allocated', (t) => {
    const hostile = [
      'ddffffffffc0c0c0c0c0', // array32 of 2^32-1 in 10 bytes
      'dfffffffffa161c0c0c0', // map32
      'dbffffffff6161616161', // str32
      'c6ffffffff0000000000', // bin32
      'c9ffffffff0800000000', // ext32 typed array
      'dc7fffc0c0c0c0c0c0c0', // array16 of 32767
    ].map(unhex);
    globalThis.gc?.();
    const before = process.memoryUsage();
    const started = performance.now();
    for (let i = 0; i < 10_000; i++) {
      for (const h of hostile) assert.throws(() => decode(h), CodecError);
    }
    const elapsed = performance.now() - started;
    const after = process.memoryUsage();
    assert.ok(after.arrayBuffers - before.arrayBuffers < 1 << 20, `arrayBuffers grew by ${after.arrayBuffers - before.arrayBuffers}`);
    assert.ok(after.rss - before.rss < 64 << 20, `rss grew by ${after.rss - before.rss}`);
    // No time bound (speed belongs to the bench suite): the memory bounds above are what shows
    // that no claimed length was allocated. The time is reported.
    t.diagnostic(`60000 refusals took ${Math.round(elapsed)} ms`);
  });
});

// --- Errors ------------------------------------------------------------------------------------------

describe('Errors cross with their class, fields, cause and properties', T, () => {
  it('a user subclass keeps name, message, stack, code, cause and own properties', () => {
    class ValidationError extends Error {
      constructor(message, options) {
        super(message, options);
        this.name = 'ValidationError';
      }
    }
    const err = new ValidationError('email is invalid', { cause: new RangeError('too short') });
    err.code = 'E_VALIDATION';
    err.field = 'email';
    err.details = { min: 3, at: new Date(5) };
    const out = decode(encode(err));
    assert.ok(out instanceof Error);
    assert.equal(out.constructor, Error, 'never a constructor named by the peer');
    assert.equal(out.name, 'ValidationError');
    assert.equal(out.message, 'email is invalid');
    assert.equal(out.stack, err.stack);
    assert.equal(out.code, 'E_VALIDATION');
    assert.equal(out.field, 'email');
    same(out.details, { min: 3, at: new Date(5) });
    assert.ok(out.cause instanceof RangeError);
    assert.equal(out.cause.message, 'too short');
    assert.equal(String(out), 'ValidationError: email is invalid');
    assert.ok(!Object.keys(out).includes('name'), 'name is not enumerable, as on a built-in Error');
    assert.ok(!Object.keys(out).includes('cause'), 'cause is not enumerable, as with { cause }');
  });

  it('a subclass whose name lives on its prototype keeps that name', () => {
    class FsError extends Error {}
    FsError.prototype.name = 'FsError';
    const out = decode(encode(new FsError('gone')));
    assert.equal(out.name, 'FsError');
    assert.equal(out.message, 'gone');
  });

  it('each built-in class is rebuilt as itself', () => {
    for (const C of [Error, TypeError, RangeError, SyntaxError, ReferenceError, EvalError, URIError]) {
      const out = decode(encode(new C('m')));
      assert.equal(Object.getPrototypeOf(out), C.prototype, C.name);
      assert.equal(out.name, C.name);
      assert.ok(!Object.hasOwn(out, 'name'), `${C.name}: name comes from the prototype`);
    }
  });

  it('a cause chain keeps every link and class', () => {
    const root = new URIError('bad uri');
    const mid = new TypeError('mid', { cause: root });
    const top = new Error('top', { cause: mid });
    const out = decode(encode(top));
    assert.ok(out.cause instanceof TypeError);
    assert.ok(out.cause.cause instanceof URIError);
    assert.equal(out.cause.cause.message, 'bad uri');
    assert.equal('cause' in out.cause.cause, false);
  });

  it('AggregateError keeps its errors', () => {
    const agg = new AggregateError([new Error('a'), new TypeError('b'), 42], 'several', { cause: 'why' });
    const out = decode(encode(agg));
    assert.ok(out instanceof AggregateError);
    assert.equal(out.message, 'several');
    assert.equal(out.cause, 'why');
    assert.equal(out.errors.length, 3);
    assert.ok(out.errors[1] instanceof TypeError);
    assert.equal(out.errors[2], 42);
  });

  it('an AggregateError subclass keeps its errors when forwarded again (found by fuzzing)', () => {
    class ValidationErrors extends AggregateError {}
    const once = decode(encode(new ValidationErrors([new Error('a'), 2], 'invalid')));
    assert.equal(once.constructor, Error, 'a user class decodes as Error');
    assert.equal(once.errors.length, 2);
    const twice = decode(encode(once));
    assert.ok(Array.isArray(twice.errors), 'the errors survive a second crossing');
    assert.equal(twice.errors[0].message, 'a');
    assert.equal(twice.errors[1], 2);
    assert.equal(Object.getOwnPropertyDescriptor(twice, 'errors').enumerable, false);
  });

  it('DOMException crosses as an Error with its name and code', () => {
    const out = decode(encode(new DOMException('stopped', 'AbortError')));
    assert.equal(out.constructor, Error);
    assert.equal(out.name, 'AbortError');
    assert.equal(out.code, 20);
  });

  it('an Error sent without a stack has none (not the decoder\'s)', () => {
    const e = new Error('x');
    delete e.stack;
    assert.equal(decode(encode(e)).stack, undefined);
  });

  it('a class name from the peer never selects anything but a built-in Error class', () => {
    for (const cls of ['Function', 'Object', 'constructor', '__proto__', 'Promise', 'toString', 'hasOwnProperty']) {
      // ext 4 { name: "X", message: "m", class: cls }
      const fields = encode({ name: 'X', message: 'm', class: cls });
      const ext = new Uint8Array(3 + fields.length);
      ext.set([0xc7, fields.length, 4]);
      ext.set(fields, 3);
      const out = decode(ext);
      assert.equal(Object.getPrototypeOf(out), Error.prototype, cls);
      assert.equal(out.name, 'X');
    }
  });
});

// --- Strings, numbers, bytes -------------------------------------------------------------------------

describe('strings are UTF-8, with the smallest header', T, () => {
  it('every string path (short, medium, long) writes what TextEncoder writes', () => {
    let seed = 7;
    const rand = (n) => ((seed = (seed * 1103515245 + 12345) >>> 0) % n);
    const pieces = ['a', 'Z', '\u00e9', '\u20ac', '\ud83d\ude00', '\ud800', '\udc00', '\u0000', '\uffff', '\u07ff', '\u0800'];
    for (const len of [0, 1, 5, 10, 11, 20, 31, 32, 33, 85, 86, 100, 255, 256, 300, 1000, 5000, 30000]) {
      for (let k = 0; k < 5; k++) {
        let s = '';
        while (s.length < len) s += pieces[rand(pieces.length)];
        const utf8 = new TextEncoder().encode(s);
        const out = encode(s);
        const n = utf8.length;
        const header = n < 32 ? 1 : n < 256 ? 2 : n < 65536 ? 3 : 5;
        assert.equal(out.length, header + n, `length ${len}`);
        assert.ok(Buffer.from(out.subarray(header)).equals(Buffer.from(utf8)), `bytes, length ${len}`);
        assert.equal(decode(out), new TextDecoder().decode(utf8));
      }
    }
  });

  it('a lone surrogate becomes U+FFFD, as TextEncoder does', () => {
    assert.equal(decode(encode('a\ud800')), 'a\ufffd');
    assert.equal(decode(encode('\udfff' + 'x'.repeat(400))), '\ufffd' + 'x'.repeat(400));
    assert.equal(decode(encode('\ud83d\ude00')), '\ud83d\ude00', 'a pair is one code point');
  });

  it('str16 and str32 start exactly at 256 and 65536 bytes', () => {
    const header = (s) => hex(encode(s).subarray(0, 5));
    assert.equal(header('x'.repeat(65535)).slice(0, 6), 'daffff');
    assert.equal(header('x'.repeat(65536)), 'db00010000');
    assert.equal(header('\u20ac'.repeat(21845)).slice(0, 6), 'daffff'); // 65535 bytes
    assert.equal(header('\u20ac'.repeat(21846)), 'db00010002'); // 65538 bytes
    assert.equal(decode(encode('\u20ac'.repeat(21846))), '\u20ac'.repeat(21846));
  });
});

describe('sizes switch header at every boundary', T, () => {
  const head = (v, n) => hex(encode(v).subarray(0, n));
  it('bin8, bin16, bin32', () => {
    assert.equal(head(new Uint8Array(65535), 3), 'c5ffff');
    assert.equal(head(new Uint8Array(65536), 5), 'c600010000');
    assert.equal(decode(encode(new Uint8Array(65536).fill(3))).length, 65536);
  });
  it('array16 and array32', () => {
    assert.equal(head(new Array(65535).fill(0), 3), 'dcffff');
    assert.equal(head(new Array(65536).fill(0), 5), 'dd00010000');
    assert.equal(decode(encode(new Array(65536).fill(0))).length, 65536);
  });
  it('map16 and map32', () => {
    const obj = (n) => Object.fromEntries(Array.from({ length: n }, (_, i) => ['k' + i, 0]));
    assert.equal(head(obj(65535), 3), 'deffff');
    assert.equal(head(obj(65536), 5), 'df00010000');
    assert.equal(Object.keys(decode(encode(obj(65536)))).length, 65536);
  });
  it('ext8, ext16, ext32 (an ArrayBuffer of 255, 65535, 65536 bytes; a Float64Array(8192))', () => {
    assert.equal(head(new ArrayBuffer(255), 3), 'c7ff09');
    assert.equal(head(new ArrayBuffer(256), 4), 'c8010009');
    assert.equal(head(new ArrayBuffer(65535), 4), 'c8ffff09');
    assert.equal(head(new ArrayBuffer(65536), 6), 'c90001000009');
    const f = Float64Array.from({ length: 8192 }, (_, i) => i / 3);
    assert.equal(head(f, 7), 'c9000100010808');
    same(decode(encode(f)), f);
  });
  it('a Map, Set and Error big enough for ext16 and ext32 get the smallest header', () => {
    const m = new Map(Array.from({ length: 100 }, (_, i) => [i, 'v'.repeat(i)]));
    assert.equal(hex(encode(m).subarray(0, 1)), 'c8');
    same(decode(encode(m)), m);
    const s = new Set(Array.from({ length: 70000 }, (_, i) => i));
    assert.equal(hex(encode(s).subarray(0, 1)), 'c9');
    same(decode(encode(s)), s);
  });
});

describe('numbers keep their exact value', T, () => {
  it('safe integers are msgpack ints; everything else float64', () => {
    let seed = 1;
    const rand = () => ((seed = (seed * 1103515245 + 12345) >>> 0) / 2 ** 32);
    for (let i = 0; i < 5000; i++) {
      const mag = 2 ** Math.floor(rand() * 54);
      const n = Math.floor(rand() * mag) * (rand() < 0.5 ? -1 : 1) + 0; // + 0: never -0
      const out = encode(n);
      assert.notEqual(out[0], 0xcb, `${n} is an int`);
      assert.ok(Object.is(decode(out), n), `${n}`);
    }
    for (const x of [0.5, -0, NaN, Infinity, -Infinity, 2 ** 53, -(2 ** 53), 2 ** 64, 1e-300]) {
      const out = encode(x);
      assert.equal(out[0], 0xcb, `${x} is a float64`);
      assert.ok(Object.is(decode(out), x));
    }
  });

  it('64-bit integers outside the safe range decode to BigInt', () => {
    assert.equal(decode(unhex('cf0020000000000000')), 2n ** 53n);
    assert.equal(decode(unhex('d3ffe0000000000000')), -(2n ** 53n));
    assert.equal(decode(unhex('d3ffe0000000000001')), -(2 ** 53 - 1));
  });
});

describe('bytes are copied once and never alias the input', T, () => {
  it('decoded bytes own their memory', () => {
    const value = {
      bin: new Uint8Array([1, 2, 3]),
      buf: Buffer.from([4, 5]),
      ab: new Uint8Array([6]).buffer,
      f64: new Float64Array([1.5]),
      dv: new DataView(new Uint8Array([7, 8]).buffer),
    };
    const bytes = encode(value);
    const out = decode(bytes);
    bytes.fill(0);
    same(out, value);
    assert.equal(out.bin.buffer.byteLength, 3, 'not a view of the batch');
    assert.equal(out.buf.buffer.byteLength, 2);
    assert.ok(Buffer.isBuffer(out.buf));
    assert.ok(!Buffer.isBuffer(out.bin), 'a plain Uint8Array stays plain');
  });

  it('typed arrays decode at any alignment of the input', () => {
    const f = new Float64Array([Math.PI, -0]);
    const bytes = encode(f);
    for (let shift = 0; shift < 8; shift++) {
      const batch = new Uint8Array(bytes.length + shift);
      batch.set(bytes, shift);
      same(decode(batch.subarray(shift)), f);
    }
  });

  it('encode() returns a fresh copy each time', () => {
    const a = encode({ n: 1 });
    const b = encode({ n: 2 });
    assert.equal(hex(a), '81a16e01');
    assert.equal(hex(b), '81a16e02');
    assert.equal(a.buffer.byteLength, a.length);
  });
});

describe('the codec is safe to re-enter and to load as CommonJS', T, () => {
  it('a getter that encodes while a value is being encoded gets a correct result', () => {
    let inner;
    const value = {
      get x() {
        inner = encode({ deep: [1, 2] });
        return 'x';
      },
      y: [3],
    };
    assert.equal(hex(encode(value)), '82a178a178a1799103');
    assert.equal(hex(inner), '81a46465657092' + '0102');
    const bad = {
      get x() {
        refusal(() => encode({ f() {} }));
        return 1;
      },
      y: { g() {} },
    };
    assert.equal(refusal(() => encode(bad)).path, 'payload.y.g');
  });

  it('built-ins from another realm (a vm context) cross like local ones', () => {
    const foreign = runInNewContext(`({
      when: new Date(5), map: new Map([[1, 'a']]), set: new Set([2]), buf: new ArrayBuffer(2),
      bytes: new Uint8Array([7]), f: new Float32Array([0.5]), err: new TypeError('t'),
      fake: { [Symbol.toStringTag]: 'Map', y: 1 },
    })`);
    delete foreign.err.stack;
    const local = {
      when: new Date(5), map: new Map([[1, 'a']]), set: new Set([2]), buf: new ArrayBuffer(2),
      bytes: new Uint8Array([7]), f: new Float32Array([0.5]), err: new TypeError('t'),
      fake: { y: 1 },
    };
    delete local.err.stack;
    assert.equal(hex(encode(foreign)), hex(encode(local)));
    assert.match(refusal(() => encode(runInNewContext('({ p: Promise.resolve() })'))).message, /^payload\.p is a Promise/);
  });

  it('the CommonJS build encodes and decodes the same bytes', () => {
    const require = createRequire(import.meta.url);
    const cjs = require('../../dist/cjs/codec.js');
    for (const v of values.slice(0, 40)) {
      assert.equal(hex(cjs.encode(evaluate(v.js))), v.hex, v.name);
      same(cjs.decode(unhex(v.hex)), decode(unhex(v.hex)), v.name);
    }
    assert.throws(
      () => cjs.decode(unhex('c1')),
      (e) => e instanceof cjs.CodecError && e.code === 'E_DECODE' && e.name === 'CodecError',
    );
  });
});

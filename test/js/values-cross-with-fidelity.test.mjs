// Promise (DESIGN.md, "Values that cross"): every value of the table crosses between processes
// intact, in both directions: Date, Error (name, message, stack, code, cause, own properties,
// subclass names), BigInt, Map, Set, undefined, NaN/-0, RegExp, Buffer, every typed array,
// DataView, ArrayBuffer, nested objects. Functions, symbols and cycles are refused with an error
// naming the path of the bad value. An error thrown by a remote handler keeps its fidelity.
//
// Roles: 'main' (the test process and the hub) and 'child-a' (a forked process). Both build the
// same value table from the same code, so each side checks what arrived against its own copy.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { CodecError, EventBus, RemoteError } from '../../dist/esm/index.js';
import { checkClosed, currentRole, deadline, exitCode, forkRole, guardAgainstOrphaning, isAlive } from './support.mjs';

const thisFile = fileURLToPath(import.meta.url);
const role = currentRole();

// --- The value table ---------------------------------------------------------------------------------

class ValidationError extends Error {
  constructor(message, options) {
    super(message, options);
    this.name = 'ValidationError';
  }
}
class FsError extends Error {}
FsError.prototype.name = 'FsError'; // a subclass whose name lives on the prototype

function makeValidationError() {
  const err = new ValidationError('email is invalid', { cause: new TypeError('inner cause') });
  err.code = 'E_VALIDATION';
  err.field = 'email';
  err.details = { min: 3, tags: ['a'] };
  return err;
}

function checkValidationError(actual) {
  assert.ok(actual instanceof Error, `an Error, got ${Object.prototype.toString.call(actual)}`);
  assert.equal(actual.name, 'ValidationError');
  assert.equal(actual.message, 'email is invalid');
  assert.equal(actual.code, 'E_VALIDATION');
  assert.equal(actual.field, 'email', 'own property');
  assert.deepEqual(actual.details, { min: 3, tags: ['a'] }, 'own property');
  assert.ok(actual.cause instanceof TypeError, 'the cause is rebuilt as a TypeError');
  assert.equal(actual.cause.message, 'inner cause');
  assert.equal(typeof actual.stack, 'string');
  assert.match(actual.stack, /email is invalid/);
  assert.match(actual.stack, /makeValidationError/, 'the sender\'s stack frames crossed');
}

function bytesOf(view) {
  return [...new Uint8Array(view.buffer, view.byteOffset, view.byteLength)];
}

/** Fresh every call: each role builds its own copy to compare with. */
function makeTable() {
  const pooled = Buffer.from('abc'); // a small Buffer is a view into Node's shared 8 KiB pool
  const offsetView = new Int32Array(new ArrayBuffer(32), 8, 3);
  offsetView.set([7, -8, 9]);
  const dataViewBuffer = new Uint8Array([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]).buffer;
  const protoJson = JSON.parse('{"__proto__": {"polluted": true}, "ok": 1}');
  let deep = { leaf: 'bottom' };
  for (let i = 0; i < 30; i++) deep = { level: i, next: deep };
  class Point {
    constructor() {
      this.x = 1;
      this.y = 2;
    }
    norm() {
      return Math.hypot(this.x, this.y);
    }
  }
  const entries = [
    // Date
    { name: 'date', value: new Date(1_700_000_000_123) },
    { name: 'date-before-epoch', value: new Date(-1) },
    { name: 'date-max', value: new Date(8.64e15) },
    { name: 'date-invalid', value: new Date(Number.NaN), check: (a) => assert.ok(a instanceof Date && Number.isNaN(a.getTime())) },
    // BigInt
    { name: 'bigint-zero', value: 0n },
    { name: 'bigint-small', value: 42n },
    { name: 'bigint-negative', value: -1n },
    { name: 'bigint-int64-max', value: 2n ** 63n - 1n },
    { name: 'bigint-int64-min', value: -(2n ** 63n) },
    { name: 'bigint-2-pow-64', value: 2n ** 64n },
    { name: 'bigint-over-2-pow-64', value: 2n ** 64n + 1n },
    { name: 'bigint-negative-over-2-pow-64', value: -(2n ** 64n) - 12_345n },
    { name: 'bigint-huge', value: 2n ** 200n + 7n },
    { name: 'bigint-huge-negative', value: -(3n ** 150n) },
    // Error
    { name: 'error-subclass', value: makeValidationError(), check: checkValidationError },
    {
      name: 'error-subclass-prototype-name',
      value: new FsError('no such file'),
      check: (a) => {
        assert.ok(a instanceof Error);
        assert.equal(a.name, 'FsError');
        assert.equal(a.message, 'no such file');
      },
    },
    {
      name: 'error-builtin',
      value: Object.assign(new RangeError('out of range'), { code: 'E_RANGE' }),
      check: (a) => {
        assert.ok(a instanceof RangeError, 'rebuilt as a RangeError');
        assert.equal(a.name, 'RangeError');
        assert.equal(a.message, 'out of range');
        assert.equal(a.code, 'E_RANGE');
        assert.match(a.stack, /^RangeError: out of range\n/);
      },
    },
    {
      name: 'error-cause-not-an-error',
      value: new Error('outer', { cause: { reason: 'disk full', at: new Date(9) } }),
      check: (a) => {
        assert.ok(a instanceof Error);
        assert.equal(a.message, 'outer');
        assert.deepEqual(a.cause, { reason: 'disk full', at: new Date(9) });
      },
    },
    {
      name: 'error-aggregate',
      value: new AggregateError([new Error('one'), new TypeError('two')], 'many'),
      check: (a) => {
        assert.ok(a instanceof AggregateError);
        assert.equal(a.message, 'many');
        assert.equal(a.errors.length, 2);
        assert.ok(a.errors[1] instanceof TypeError);
        assert.deepEqual(a.errors.map((e) => e.message), ['one', 'two']);
      },
    },
    // Map and Set
    { name: 'map', value: new Map([['a', 1], [2, 'two'], [{ k: 1 }, 'object key'], [null, undefined], [3n, new Set([1])]]) },
    { name: 'map-empty', value: new Map() },
    { name: 'set', value: new Set([1, '1', 2n, null, undefined, { a: 1 }, new Date(3)]) },
    // RegExp
    { name: 'regexp', value: /a(b+)c\/d/gimsy },
    { name: 'regexp-unicode', value: /[\u{1F600}-\u{1F64F}]+/u },
    // undefined, NaN, -0, Infinity and other numbers
    { name: 'undefined', value: undefined },
    { name: 'undefined-property', value: { a: undefined, b: 1 }, check: (a) => {
      assert.deepStrictEqual(a, { a: undefined, b: 1 });
      assert.ok(Object.hasOwn(a, 'a'), 'the key with undefined is kept');
    } },
    { name: 'undefined-in-array', value: [undefined, null, undefined] },
    { name: 'nan', value: Number.NaN, check: (a) => assert.ok(Number.isNaN(a)) },
    { name: 'negative-zero', value: -0, check: (a) => assert.ok(Object.is(a, -0), `-0, got ${a}`) },
    { name: 'positive-zero', value: 0, check: (a) => assert.ok(Object.is(a, 0), `+0, got ${Object.is(a, -0) ? '-0' : a}`) },
    { name: 'infinity', value: Number.POSITIVE_INFINITY },
    { name: 'negative-infinity', value: Number.NEGATIVE_INFINITY },
    { name: 'numbers', value: [0.1, -1.5, Number.MAX_SAFE_INTEGER, Number.MIN_SAFE_INTEGER, 2 ** 53 + 2, Number.MIN_VALUE, Number.MAX_VALUE, -(2 ** 31), 2 ** 32, 127, 128, 255, 256, 65_535, 65_536, -32, -33] },
    { name: 'strings', value: ['', 'plain', 'héllo wörld ✓ 🌍', 'x'.repeat(70_000), 'nul\u0000inside'] },
    { name: 'scalars', value: [true, false, null] },
    // Bytes
    { name: 'buffer', value: Buffer.from('hello buffer'), check: (a) => {
      assert.ok(Buffer.isBuffer(a), 'arrives as a Buffer');
      assert.equal(a.toString(), 'hello buffer');
    } },
    { name: 'buffer-pooled-slice', value: pooled, check: (a) => {
      assert.ok(Buffer.isBuffer(a), 'arrives as a Buffer');
      assert.equal(a.length, 3, 'only the view\'s bytes, not the pool');
      assert.equal(a.toString(), 'abc');
    } },
    { name: 'buffer-empty', value: Buffer.alloc(0), check: (a) => {
      assert.ok(Buffer.isBuffer(a));
      assert.equal(a.length, 0);
    } },
    { name: 'int8array', value: new Int8Array([-128, -1, 0, 127]) },
    { name: 'uint8array', value: new Uint8Array([0, 1, 254, 255]), check: (a) => {
      assert.ok(a instanceof Uint8Array && !Buffer.isBuffer(a), 'a Uint8Array stays a Uint8Array, not a Buffer');
      assert.deepStrictEqual(a, new Uint8Array([0, 1, 254, 255]));
    } },
    { name: 'uint8clampedarray', value: new Uint8ClampedArray([0, 128, 255]) },
    { name: 'int16array', value: new Int16Array([-32_768, -1, 32_767]) },
    { name: 'uint16array', value: new Uint16Array([0, 65_535]) },
    { name: 'int32array', value: new Int32Array([-(2 ** 31), 2 ** 31 - 1]) },
    { name: 'uint32array', value: new Uint32Array([0, 2 ** 32 - 1]) },
    { name: 'float32array', value: new Float32Array([1.5, -0, Number.NaN, Number.POSITIVE_INFINITY, 3.4e38]) },
    { name: 'float64array', value: new Float64Array([Math.PI, -0, Number.NaN, Number.NEGATIVE_INFINITY, Number.MIN_VALUE]) },
    { name: 'bigint64array', value: new BigInt64Array([-(2n ** 63n), -1n, 2n ** 63n - 1n]) },
    { name: 'biguint64array', value: new BigUint64Array([0n, 2n ** 64n - 1n]) },
    { name: 'typed-array-offset-view', value: offsetView, check: (a) => {
      assert.ok(a instanceof Int32Array);
      assert.deepEqual([...a], [7, -8, 9]);
      assert.equal(a.byteLength, 12, 'only the view\'s bytes');
    } },
    { name: 'typed-array-empty', value: new Float32Array(0) },
    { name: 'dataview', value: new DataView(dataViewBuffer, 2, 5), check: (a) => {
      assert.ok(a instanceof DataView, 'a DataView');
      assert.equal(a.byteLength, 5);
      assert.deepEqual(bytesOf(a), [2, 3, 4, 5, 6]);
    } },
    { name: 'arraybuffer', value: new Uint8Array([1, 2, 3, 250]).buffer, check: (a) => {
      assert.ok(a instanceof ArrayBuffer, 'an ArrayBuffer');
      assert.deepEqual([...new Uint8Array(a)], [1, 2, 3, 250]);
    } },
    { name: 'arraybuffer-empty', value: new ArrayBuffer(0) },
    // Objects
    {
      name: 'nested',
      value: {
        user: { id: 7n, name: 'ada', tags: new Set(['x']), joined: new Date(0), meta: new Map([['k', [1, { deep: [null, undefined, -0] }]]]) },
        list: [[[]], {}, [{ a: [{ b: [{ c: 'd' }] }] }]],
        bytes: new Uint8Array([1, 2, 3]),
        buf: Buffer.from('nested'),
        re: /x/g,
        when: new Date(12_345),
      },
    },
    { name: 'nested-30-levels', value: deep },
    { name: 'big-array', value: Array.from({ length: 10_000 }, (_, i) => i) },
    { name: 'class-instance', value: new Point(), expected: { x: 1, y: 2 } },
    {
      name: 'proto-key',
      value: protoJson,
      check: (a) => {
        assert.ok(Object.hasOwn(a, '__proto__'), '__proto__ arrives as an own data property');
        assert.equal(Object.getPrototypeOf(a), Object.prototype);
        assert.equal(a.ok, 1);
        assert.equal(({}).polluted, undefined, 'no prototype was touched');
      },
    },
  ];
  return entries;
}

/** Throws an AssertionError if `actual` is not what `entry` should become on the other side. */
function checkEntry(entry, actual) {
  if (entry.check) entry.check(actual);
  else assert.deepStrictEqual(actual, 'expected' in entry ? entry.expected : entry.value);
}

function verdict(entry, actual) {
  try {
    checkEntry(entry, actual);
    return { ok: true };
  } catch (err) {
    return { ok: false, message: err.message };
  }
}

// --- child-a ---------------------------------------------------------------------------------------

async function runChild() {
  const bus = new EventBus({ name: role });
  await bus.ready();
  const table = makeTable();
  for (const entry of table) {
    // hub -> child: the request is the bare value; the child checks it against its own copy.
    bus.handle(`child-a:check:${entry.name}`, (value) => verdict(entry, value));
    // child -> hub: the result is the bare value.
    bus.handle(`child-a:get:${entry.name}`, () => entry.value);
    // child -> hub: the request is the bare value; the hub's handler checks it.
    bus.handle(`child-a:send:${entry.name}`, () => bus.invoke(`hub:check:${entry.name}`, entry.value));
  }
  // Events, both directions.
  const eventVerdicts = {};
  bus.on('value:*', (value, ctx) => {
    const name = ctx.topic.slice('value:'.length);
    eventVerdicts[name] = verdict(table.find((e) => e.name === name), value);
  });
  bus.on('values-sent', () => bus.emit('event-verdicts', eventVerdicts));
  bus.handle('child-a:emit-all', () => {
    for (const entry of table) bus.emit(`back:${entry.name}`, entry.value);
    bus.emit('back-done');
  });

  // Errors.
  bus.handle('child-a:throw-validation', () => {
    throw makeValidationError();
  });
  bus.handle('child-a:throw-string', () => {
    throw 'a plain string'; // eslint-disable-line no-throw-literal
  });
  bus.handle('child-a:call-describe', async (name) => {
    try {
      return { resolved: await bus.invoke(name) };
    } catch (err) {
      return {
        isRemoteError: err instanceof RemoteError,
        name: err.name,
        message: err.message,
        code: err.code,
        field: err.field,
        details: err.details,
        causeIsError: err.cause instanceof Error,
        causeMessage: err.cause?.message,
        stack: err.stack,
        remotePid: err.remote?.pid,
      };
    }
  });
  bus.handle('child-a:bad-result', () => ({ ok: 1, nested: { fn() {} } }));
  bus.handle('child-a:echo', (x) => x);
  bus.handle('child-a:try-bad-emit', () => {
    try {
      bus.emit('never', { a: { fn() {} } });
      return { threw: false };
    } catch (err) {
      return { threw: true, isCodecError: err instanceof CodecError, name: err.name, code: err.code, path: err.path, message: err.message };
    }
  });
  const afterBad = [];
  bus.on('after-bad', (data) => afterBad.push(data));
  bus.on('after-bad-marker', () => bus.emit('after-bad-report', afterBad));

  bus.on('test:quit', async () => {
    await bus.close();
    checkClosed(bus, role);
  });
  bus.emit('peer:ready', { role });
}

// --- The hub and the tests -------------------------------------------------------------------------

function runMain() {
  const table = makeTable();
  let bus;
  let child;

  describe('values cross with fidelity', { timeout: 60_000 }, () => {
    before(async () => {
      bus = new EventBus({ role: 'hub', name: 'hub' });
      await bus.ready();
      for (const entry of table) bus.handle(`hub:check:${entry.name}`, (value) => verdict(entry, value));
      bus.handle('hub:throw-validation', () => {
        throw makeValidationError();
      });
      const ready = bus.once('peer:ready');
      child = forkRole(thisFile, 'child-a', bus.childEnv());
      await deadline(15_000, 'child-a ready', ready);
    });

    after(async () => {
      if (isAlive(child)) child.kill('SIGKILL');
      await bus?.close();
    });

    describe('hub -> child (invoke request)', () => {
      for (const entry of table) {
        it(entry.name, { timeout: 10_000 }, async () => {
          const v = await deadline(5_000, entry.name, bus.invoke(`child-a:check:${entry.name}`, entry.value));
          assert.ok(v.ok, `child-a saw a different value: ${v.message}`);
        });
      }
    });

    describe('child -> hub (invoke result)', () => {
      for (const entry of table) {
        it(entry.name, { timeout: 10_000 }, async () => {
          const actual = await deadline(5_000, entry.name, bus.invoke(`child-a:get:${entry.name}`));
          checkEntry(entry, actual);
        });
      }
    });

    describe('child -> hub (invoke request)', () => {
      for (const entry of table) {
        it(entry.name, { timeout: 10_000 }, async () => {
          // child-a invokes hub:check:<name> with the bare value; the hub's handler checks it.
          const v = await deadline(5_000, entry.name, bus.invoke(`child-a:send:${entry.name}`));
          assert.ok(v.ok, `the hub saw a different value: ${v.message}`);
        });
      }
    });

    it('events, hub -> child and child -> hub', { timeout: 15_000 }, async () => {
      const verdicts = bus.once('event-verdicts');
      for (const entry of table) bus.emit(`value:${entry.name}`, entry.value);
      bus.emit('values-sent');
      const got = await deadline(10_000, 'event verdicts', verdicts);
      const bad = table.filter((e) => !got[e.name]?.ok).map((e) => `${e.name}: ${got[e.name]?.message ?? 'never arrived'}`);
      assert.deepEqual(bad, [], 'hub -> child events');

      const back = new Map();
      const off = bus.on('back:*', (value, ctx) => back.set(ctx.topic.slice('back:'.length), value));
      const done = bus.once('back-done');
      await deadline(5_000, 'emit-all', bus.invoke('child-a:emit-all'));
      await deadline(5_000, 'back-done', done);
      off();
      const failures = [];
      for (const entry of table) {
        if (!back.has(entry.name)) failures.push(`${entry.name}: never arrived`);
        else {
          const v = verdict(entry, back.get(entry.name));
          if (!v.ok) failures.push(`${entry.name}: ${v.message}`);
        }
      }
      assert.deepEqual(failures, [], 'child -> hub events');
    });

    describe('an error thrown by a handler keeps its fidelity', () => {
      it('child throws, hub gets a RemoteError with name, message, code, cause, own property and both stacks', { timeout: 10_000 }, async () => {
        const err = await deadline(5_000, 'invoke', bus.invoke('child-a:throw-validation').then(
          () => assert.fail('resolved'),
          (e) => e,
        ));
        assert.ok(err instanceof RemoteError, 'a RemoteError');
        assert.ok(err instanceof Error);
        assert.equal(err.name, 'ValidationError');
        assert.equal(err.message, 'email is invalid');
        assert.equal(err.code, 'E_VALIDATION');
        assert.ok(err.cause instanceof Error, 'the cause is an Error');
        assert.equal(err.cause.message, 'inner cause');
        assert.equal(err.field, 'email');
        assert.deepEqual(err.details, { min: 3, tags: ['a'] });
        assert.equal(err.remote.pid, child.pid);
        assert.match(err.stack, /^ValidationError: email is invalid\n/);
        assert.match(err.stack, /\[remote [^\n]*makeValidationError/, 'the remote frames, marked');
        assert.ok(err.stack.includes("--- invoke('child-a:throw-validation')"), 'the local section');
        const local = err.stack.split("--- invoke('child-a:throw-validation')")[1];
        assert.match(local, /values-cross-with-fidelity\.test\.mjs/, 'the local frames show where invoke() was called');
      });

      it('hub throws, child gets the same RemoteError', { timeout: 10_000 }, async () => {
        const d = await deadline(5_000, 'invoke', bus.invoke('child-a:call-describe', 'hub:throw-validation'));
        assert.deepEqual(
          { isRemoteError: d.isRemoteError, name: d.name, message: d.message, code: d.code, field: d.field, details: d.details, causeIsError: d.causeIsError, causeMessage: d.causeMessage, remotePid: d.remotePid },
          { isRemoteError: true, name: 'ValidationError', message: 'email is invalid', code: 'E_VALIDATION', field: 'email', details: { min: 3, tags: ['a'] }, causeIsError: true, causeMessage: 'inner cause', remotePid: process.pid },
        );
        assert.match(d.stack, /\[remote [^\n]*makeValidationError/);
        assert.ok(d.stack.includes("--- invoke('hub:throw-validation')"));
      });

      it('a handler that throws a non-Error still rejects with a RemoteError', { timeout: 10_000 }, async () => {
        await assert.rejects(deadline(5_000, 'invoke', bus.invoke('child-a:throw-string')), (err) => {
          assert.ok(err instanceof RemoteError);
          assert.equal(err.message, 'a plain string');
          return true;
        });
      });
    });

    describe('functions, symbols and cycles are refused, naming the path', () => {
      const cyclic = () => {
        const o = { x: {} };
        o.x.self = o;
        return o;
      };
      const bad = [
        ['a function', () => ({ a: { fn() {} } }), '.a.fn'],
        ['a symbol', () => ({ list: [1, Symbol('s')] }), '.list[1]'],
        ['a cycle', cyclic, '.x.self'],
        ['a function as a Map value', () => ({ m: new Map([['k', () => 1]]) }), '.m.get("k")'],
      ];
      for (const [what, make, path] of bad) {
        it(`emit() throws CodecError synchronously for ${what}`, { timeout: 5_000 }, () => {
          assert.throws(() => bus.emit('refused', make()), (err) => {
            assert.ok(err instanceof CodecError, `a CodecError, got ${err?.name}`);
            assert.equal(err.code, 'E_UNSERIALIZABLE');
            assert.ok(err.message.includes(path), `the message names ${path}: ${err.message}`);
            assert.ok(err.path.endsWith(path), `path ${err.path}`);
            return true;
          });
        });
        it(`invoke() rejects (does not throw) with CodecError for ${what}`, { timeout: 5_000 }, async () => {
          let promise;
          assert.doesNotThrow(() => {
            promise = bus.invoke('child-a:echo', make());
          });
          await assert.rejects(promise, (err) => {
            assert.ok(err instanceof CodecError, `a CodecError, got ${err?.name}`);
            assert.equal(err.code, 'E_UNSERIALIZABLE');
            assert.ok(err.message.includes(path), `the message names ${path}: ${err.message}`);
            return true;
          });
        });
      }

      it('a refused emit leaves the events around it intact', { timeout: 10_000 }, async () => {
        const report = bus.once('after-bad-report');
        bus.emit('after-bad', { n: 1 });
        assert.throws(() => bus.emit('after-bad', { n: 2, fn() {} }), CodecError);
        bus.emit('after-bad', { n: 3 });
        bus.emit('after-bad-marker');
        assert.deepEqual(await deadline(5_000, 'report', report), [{ n: 1 }, { n: 3 }]);
      });

      it('a client\'s emit() refuses them too', { timeout: 10_000 }, async () => {
        const r = await deadline(5_000, 'invoke', bus.invoke('child-a:try-bad-emit'));
        assert.deepEqual(
          { threw: r.threw, isCodecError: r.isCodecError, name: r.name, code: r.code },
          { threw: true, isCodecError: true, name: 'CodecError', code: 'E_UNSERIALIZABLE' },
        );
        assert.ok(r.message.includes('.a.fn'), r.message);
      });

      it('a handler result that cannot cross fails the invoke, naming the path, instead of hanging', { timeout: 10_000 }, async () => {
        await assert.rejects(deadline(5_000, 'invoke', bus.invoke('child-a:bad-result')), (err) => {
          assert.ok(err instanceof RemoteError, `a RemoteError, got ${err?.name}`);
          assert.equal(err.name, 'CodecError');
          assert.ok(err.message.includes('.nested.fn'), err.message);
          return true;
        });
      });
    });

    it('closes: the child exits by itself, the hub has nothing pending', { timeout: 15_000 }, async () => {
      bus.emit('test:quit');
      assert.deepEqual(await deadline(5_000, 'child-a exit', exitCode(child)), { code: 0, signal: null });
      await bus.close();
      const s = bus.stats();
      assert.equal(s.invokes.pending, 0);
      assert.equal(s.invokes.serving, 0);
    });
  });
}

if (role !== 'main') guardAgainstOrphaning();
if (role === 'main') runMain();
else await runChild();

// Promise (issue 12, "Schemas"): bus.handle(name, fn, { schema }) and bus.on(topic, fn,
// { schema }) take any Standard Schema validator (zod, valibot). The check runs in the receiving
// process. A request that fails reaches the caller as a typed ValidationError that names the
// path; an event that fails never reaches the listener and is reported to bus.on('error').
//
// Roles: 'main' (the hub, a caller and a subscriber) and 'checker' (a forked process whose
// handlers and listener carry schemas).
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import * as v from 'valibot';
import { z } from 'zod';
import { EventBus, InvalidArgumentError, RemoteError, ValidationError } from '../../dist/esm/index.js';
import { closeOnRequest, currentRole, deadline, forkRole, guardAgainstOrphaning, killLeftovers, messageFrom, nextEvent, requestClose } from './support.mjs';

const thisFile = fileURLToPath(import.meta.url);
const role = currentRole();

const Order = z.object({ id: z.string(), items: z.array(z.object({ sku: z.string(), qty: z.number().int().positive() })) });
const Add = v.object({ a: v.number(), b: v.number() });

if (role === 'checker') {
  guardAgainstOrphaning();
  const bus = new EventBus({ role: 'client', name: 'checker' });
  let handled = 0;
  bus.handle('order:place', (order) => {
    handled++;
    return { id: order.id, lines: order.items.length };
  }, { schema: Order });
  bus.handle('math:add', ({ a, b }) => a + b, { schema: Add });
  // A transforming schema: the handler receives its output.
  bus.handle('num:parse', (n) => n * 2, { schema: z.string().transform((s) => Number(s)) });
  // An asynchronous refinement: validate() returns a promise.
  bus.handle('name:free', (name) => `${name} is free`, {
    schema: z.string().refine(async (s) => s !== 'taken', { message: 'name already taken' }),
  });
  bus.handle('checker:handled', () => handled);
  // The user's own class of the same name and code: not a schema's refusal.
  class ValidationError extends Error {
    constructor(message) {
      super(message);
      this.name = 'ValidationError';
      this.code = 'E_VALIDATION';
    }
  }
  bus.handle('own:check', () => {
    throw new ValidationError('mine');
  });
  const seen = [];
  const errors = [];
  bus.on('error', (err) => errors.push({ name: err.name, code: err.code, path: err.path, message: err.message }));
  bus.on('temp', (t) => seen.push(t), { schema: v.object({ celsius: v.number() }) });
  bus.handle('checker:events', () => ({ seen, errors }));
  closeOnRequest(bus);
  await bus.ready();
  process.send({ type: 'ready' });
} else {
  describe('schemas check values in the process that receives them', { timeout: 60_000 }, () => {
    let bus;
    let checker;

    before(async () => {
      bus = new EventBus({ role: 'hub', name: 'main' });
      await bus.ready();
      checker = forkRole(thisFile, 'checker', bus.childEnv());
      await deadline(10_000, 'checker ready', messageFrom(checker, (m) => m.type === 'ready'));
    });

    after(async () => {
      if (checker) await requestClose(checker).catch(() => {});
      killLeftovers([checker]);
      await bus?.close();
    });

    it('a request that passes reaches the handler (zod and valibot)', async () => {
      assert.deepEqual(await bus.invoke('order:place', { id: 'o1', items: [{ sku: 'a', qty: 2 }] }), { id: 'o1', lines: 1 });
      assert.equal(await bus.invoke('math:add', { a: 2, b: 3 }), 5);
    });

    it('a request that fails is a ValidationError at the caller, naming the path, and the handler never runs', async () => {
      const before = await bus.invoke('checker:handled');
      const err = await bus.invoke('order:place', { id: 'o2', items: [{ sku: 'a', qty: 1 }, { sku: 'b', qty: -1 }] }).then(
        () => assert.fail('resolved'),
        (e) => e,
      );
      assert.ok(err instanceof ValidationError, `got ${err?.constructor?.name}: ${err?.message}`);
      assert.equal(err instanceof RemoteError, false);
      assert.equal(err.code, 'E_VALIDATION');
      assert.equal(err.path, 'items[1].qty');
      assert.match(err.message, /invoke\('order:place'\) request failed its schema at items\[1\]\.qty/);
      assert.equal(err.remote.pid, checker.pid, 'says which process checked');
      assert.ok(err.issues.length >= 1);
      assert.equal(await bus.invoke('checker:handled'), before, 'the handler did not run');

      const vErr = await bus.invoke('math:add', { a: 1, b: 'two' }).catch((e) => e);
      assert.ok(vErr instanceof ValidationError);
      assert.equal(vErr.path, 'b');
    });

    it("a handler's own error named ValidationError stays a RemoteError", async () => {
      const err = await bus.invoke('own:check').catch((e) => e);
      assert.ok(err instanceof RemoteError, `got ${err?.constructor?.name}`);
      assert.equal(err instanceof ValidationError, false);
      assert.equal(err.name, 'ValidationError');
      assert.equal(err.code, 'E_VALIDATION');
    });

    it("the handler receives the schema's output, and asynchronous schemas work", async () => {
      assert.equal(await bus.invoke('num:parse', '21'), 42);
      assert.equal(await bus.invoke('name:free', 'alice'), 'alice is free');
      const err = await bus.invoke('name:free', 'taken').catch((e) => e);
      assert.ok(err instanceof ValidationError);
      assert.match(err.message, /name already taken/);
    });

    it('an event that fails never reaches the listener and is reported to on("error") there', async () => {
      bus.emit('temp', { celsius: 21.5 });
      bus.emit('temp', { celsius: 'hot' });
      bus.emit('temp', { celsius: 19 });
      let report;
      for (let i = 0; i < 100; i++) {
        report = await bus.invoke('checker:events');
        if (report.seen.length + report.errors.length >= 3) break;
        await new Promise((r) => setTimeout(r, 20));
      }
      assert.deepEqual(report.seen, [{ celsius: 21.5 }, { celsius: 19 }]);
      assert.equal(report.errors.length, 1);
      assert.deepEqual(
        { name: report.errors[0].name, code: report.errors[0].code, path: report.errors[0].path },
        { name: 'ValidationError', code: 'E_VALIDATION', path: 'celsius' },
      );
      assert.match(report.errors[0].message, /event 'temp' failed its schema at celsius/);
    });

    it('a handler in the same process checks its requests the same way', async () => {
      const off = bus.handle('local:add', ({ a, b }) => a + b, { schema: Add });
      try {
        assert.equal(await bus.invoke('local:add', { a: 1, b: 2 }), 3);
        const err = await bus.invoke('local:add', { a: 1 }).catch((e) => e);
        assert.ok(err instanceof ValidationError, `got ${err?.constructor?.name}`);
        assert.equal(err.path, 'b');
      } finally {
        off();
      }
    });

    it('a local listener with a schema, and off() with the listener that was given', async () => {
      const got = [];
      const errors = [];
      const onError = (e) => errors.push(e);
      bus.on('error', onError);
      const listener = (t) => got.push(t);
      bus.on('local:temp', listener, { schema: v.object({ celsius: v.number() }) });
      bus.emit('local:temp', { celsius: 1 });
      bus.emit('local:temp', { celsius: 'x' });
      await new Promise((r) => setTimeout(r, 20));
      bus.off('local:temp', listener);
      bus.emit('local:temp', { celsius: 2 });
      await new Promise((r) => setTimeout(r, 20));
      bus.off('error', onError);
      assert.deepEqual(got, [{ celsius: 1 }]);
      assert.equal(errors.length, 1);
      assert.ok(errors[0] instanceof ValidationError);
    });

    it('something that is not a schema is refused at once', () => {
      assert.throws(() => bus.handle('bad', () => 1, { schema: { parse() {} } }), InvalidArgumentError);
      assert.throws(() => bus.on('bad', () => {}, { schema: 42 }), InvalidArgumentError);
    });
  });
}

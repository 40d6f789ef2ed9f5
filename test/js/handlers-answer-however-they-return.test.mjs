// Promise (docs/API.md, bus.handle()): a handler's value, promise or throw reaches its caller as a
// result or a RemoteError, and ctx.signal aborts when the call stops mattering. The serving path
// answers a plain value without a promise round and makes ctx.signal only when a handler reads
// it (lib/event-bus.ts, ServeContext); these tests hold it to the documented behaviour: every
// kind of return, a signal first read after the cancellation (or after close()), and the local
// frames of a RemoteError, which come from the code that awaited the invoke.
//
// One process: a hub bus serves, a client bus in the same process calls it through the hub (the
// same path as between processes); the caller's CANCEL and its next invoke travel in order, so
// an invoke after a cancellation is a fence that proves the CANCEL has been handled.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { AbortError, ClosedError, ConnectionLostError, EventBus, RemoteError, TimeoutError } from '../../dist/esm/index.js';
import { deadline } from './support.mjs';

function clientOf(hub, name) {
  const env = hub.childEnv();
  return new EventBus({ role: 'client', name, endpoint: env.SWITCHBOARD_ENDPOINT, token: env.SWITCHBOARD_TOKEN });
}

/** What a handler's signal looks like now; `signal` is read here, possibly for the first time. */
const signalState = (ctx) => ({ aborted: ctx.signal.aborted, reason: ctx.signal.reason?.name });

describe('handlers answer however they return', { timeout: 60_000 }, () => {
  let hub;
  let client;
  const kept = new Map(); // ctx of calls that hold, by id

  before(async () => {
    hub = new EventBus({ role: 'hub', name: 'hub' });
    await hub.ready();
    hub.handle('plain', (x, ctx) => ({ x, sender: ctx.sender.name, name: ctx.name, serving: hub.stats().invokes.serving }));
    hub.handle('throws', () => {
      throw Object.assign(new RangeError('too far'), { code: 'E_FAR' });
    });
    hub.handle('throws-string', () => {
      throw 'just a string';
    });
    hub.handle('rejects', () => Promise.reject(new TypeError('not now')));
    hub.handle('async', async (x) => x * 2);
    // A thenable that is not a promise, settled later: it must be awaited.
    hub.handle('thenable', (x) => ({ then: (resolve) => setImmediate(() => resolve(x + 1)) }));
    hub.handle('thenable-rejects', () => ({ then: (_, reject) => setImmediate(() => reject(new Error('thenable said no'))) }));
    hub.handle('then-getter-throws', () => ({
      get then() {
        throw new Error('then getter');
      },
    }));
    // `then` that is not a function: a plain value, as for await.
    hub.handle('then-not-a-function', () => ({ then: 5 }));
    hub.handle('undefined', () => undefined);
    // Holds the call; keeps ctx without reading ctx.signal.
    hub.handle('hold', ({ id }, ctx) => {
      kept.set(id, ctx);
      return new Promise(() => {});
    });
    // `serving` counts the calls still held: this one, which counts itself while it runs, is not.
    hub.handle('inspect', (id) => ({ ...signalState(kept.get(id)), same: kept.get(id).signal === kept.get(id).signal, serving: hub.stats().invokes.serving - 1 }));
    client = clientOf(hub, 'caller');
    await client.ready();
  });

  after(async () => {
    await client?.close();
    await hub?.close();
  });

  it('a plain value is the result; ctx has the sender and the name', { timeout: 10_000 }, async () => {
    // A handler counts itself as serving while it runs, as stats() documents.
    assert.deepEqual(await deadline(5_000, 'invoke', client.invoke('plain', 7)), { x: 7, sender: 'caller', name: 'plain', serving: 1 });
    assert.equal(hub.stats().invokes.serving, 0);
    assert.equal(await deadline(5_000, 'invoke', client.invoke('undefined')), undefined);
    assert.deepEqual(await deadline(5_000, 'invoke', client.invoke('then-not-a-function')), { then: 5 });
  });

  it('a promise or a thenable is awaited', { timeout: 10_000 }, async () => {
    assert.equal(await deadline(5_000, 'invoke', client.invoke('async', 21)), 42);
    assert.equal(await deadline(5_000, 'invoke', client.invoke('thenable', 1)), 2);
  });

  it('a synchronous throw, a rejection, a rejecting thenable and a throwing then getter are RemoteErrors', { timeout: 10_000 }, async () => {
    const cases = [
      ['throws', 'RangeError', 'too far', 'E_FAR'],
      ['throws-string', 'Error', 'just a string', 'E_REMOTE'],
      ['rejects', 'TypeError', 'not now', 'E_REMOTE'],
      ['thenable-rejects', 'Error', 'thenable said no', 'E_REMOTE'],
      ['then-getter-throws', 'Error', 'then getter', 'E_REMOTE'],
    ];
    for (const [name, errName, message, code] of cases) {
      await assert.rejects(deadline(5_000, name, client.invoke(name)), (err) => {
        assert.ok(err instanceof RemoteError, `${name}: a RemoteError, got ${err?.name}: ${err?.message}`);
        assert.equal(err.name, errName, name);
        assert.equal(err.message, message, name);
        assert.equal(err.code, code, name);
        return true;
      });
    }
    assert.equal(hub.stats().invokes.serving, 0, 'nothing is left serving');
  });

  it('a signal first read after the caller timed out is already aborted', { timeout: 10_000 }, async () => {
    await assert.rejects(deadline(5_000, 'invoke', client.invoke('hold', { id: 'timeout' }, { timeout: 50 })), TimeoutError);
    // Sent after the CANCEL, by the same sender: it is handled after it.
    const state = await deadline(5_000, 'inspect', client.invoke('inspect', 'timeout'));
    assert.deepEqual(state, { aborted: true, reason: 'AbortError', same: true, serving: 0 });
  });

  it('a signal first read after the caller aborted is already aborted', { timeout: 10_000 }, async () => {
    const ac = new AbortController();
    const call = client.invoke('hold', { id: 'abort' }, { signal: ac.signal, timeout: 0 });
    // The call has reached the handler once an invoke sent after it is answered.
    await deadline(5_000, 'fence', client.invoke('plain', 0));
    assert.equal(hub.stats().invokes.serving, 1);
    assert.ok(kept.has('abort'));
    ac.abort(new Error('changed my mind'));
    await assert.rejects(deadline(5_000, 'invoke', call), AbortError);
    const state = await deadline(5_000, 'inspect', client.invoke('inspect', 'abort'));
    assert.deepEqual(state, { aborted: true, reason: 'AbortError', same: true, serving: 0 });
  });

  it('a signal read before the cancellation fires its abort event', { timeout: 10_000 }, async () => {
    const aborted = new Promise((resolve) => {
      hub.handle('listens', (_, ctx) => {
        ctx.signal.addEventListener('abort', () => resolve(ctx.signal.reason?.name));
        return new Promise(() => {});
      });
    });
    await assert.rejects(deadline(5_000, 'invoke', client.invoke('listens', null, { timeout: 50 })), TimeoutError);
    assert.equal(await deadline(5_000, 'the abort event', aborted), 'AbortError');
  });

  it('close() aborts the signal of a handler still running, read before or only after the close', { timeout: 10_000 }, async () => {
    // The server is a client bus here, so that closing it leaves the hub (the caller) up.
    const server = clientOf(hub, 'server');
    await server.ready();
    const seen = {};
    const inside = [];
    server.handle('server:hold-read', (_, ctx) => {
      seen.read = ctx;
      ctx.signal.addEventListener('abort', () => inside.push('hold-read'));
      return new Promise(() => {});
    });
    server.handle('server:hold-unread', (_, ctx) => {
      seen.unread = ctx;
      return new Promise(() => {});
    });
    // A handler that answers synchronously but closes its bus first: its signal aborts too.
    server.handle('server:closes', (_, ctx) => {
      seen.closing = ctx;
      server.close();
      return 'never sent';
    });
    // Registered once an invoke of the server's own sent after it is answered by the hub.
    await deadline(5_000, 'fence', server.invoke('plain', 0));
    const holdRead = hub.invoke('server:hold-read').catch((e) => e);
    const holdUnread = hub.invoke('server:hold-unread').catch((e) => e);
    const closing = hub.invoke('server:closes').catch((e) => e);
    for (const err of await deadline(5_000, 'the calls to end', Promise.all([holdRead, holdUnread, closing]))) {
      assert.ok(err instanceof ConnectionLostError, `the caller sees the server go: got ${err?.name}: ${err?.message}`);
    }
    assert.deepEqual(inside, ['hold-read'], 'the abort event of the signal that was read');
    for (const which of ['read', 'unread', 'closing']) {
      assert.equal(seen[which].signal.aborted, true, which);
      assert.ok(seen[which].signal.reason instanceof ClosedError, `${which}: the reason is a ClosedError`);
    }
    assert.equal(server.stats().invokes.serving, 0);
  });

  it('the local frames of a RemoteError show the code that awaited the invoke, for a remote and a local handler', { timeout: 10_000 }, async () => {
    async function loadTheThingThatThrows(bus) {
      return await bus.invoke('throws');
    }
    const local = await loadTheThingThatThrows(hub).catch((e) => e);
    const remote = await loadTheThingThatThrows(client).catch((e) => e);
    for (const [where, err] of [['remote', remote], ['local', local]]) {
      assert.ok(err instanceof RemoteError, `${where}: a RemoteError, got ${err?.name}`);
      const [remoteFrames, localFrames] = err.stack.split("--- invoke('throws')");
      assert.match(remoteFrames, /^RangeError: too far\n/, where);
      assert.match(remoteFrames, /\[remote [^\n]*handlers-answer-however-they-return\.test\.mjs/, `${where}: the remote frames, marked`);
      assert.match(localFrames, /at async loadTheThingThatThrows \([^\n]*handlers-answer-however-they-return\.test\.mjs/, `${where}: the local frames:\n${localFrames}`);
    }
  });
});

// Promise (issue 5, "Limits"): a peer that goes beyond one of the hub's per-peer limits gets a
// typed LimitError (code E_LIMIT) naming the option to raise, stays connected, and no other peer
// notices. The limits are hub options of the EventBus, checked like every other option.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { EventBus, InvalidArgumentError, LimitError } from '../../dist/esm/index.js';
import { deadline, nextEvent } from './support.mjs';

const T = { timeout: 20000 };

describe('hub limits are typed errors for the offender only', T, () => {
  /** @type {EventBus} */ let hub;
  /** @type {EventBus} */ let greedy;
  /** @type {EventBus} */ let bystander;

  before(async () => {
    hub = new EventBus({ role: 'hub', name: 'hub', maxSubscriptionsPerPeer: 2, maxPendingInvokesPerPeer: 1 });
    await hub.ready();
    const env = hub.childEnv();
    const join = (name) =>
      new EventBus({ role: 'client', name, endpoint: env.SWITCHBOARD_ENDPOINT, token: env.SWITCHBOARD_TOKEN });
    greedy = join('greedy');
    bystander = join('bystander');
    await Promise.all([greedy.ready(), bystander.ready()]);
    // Never answers, so the first call stays pending.
    hub.handle('never', () => new Promise(() => {}));
    hub.handle('echo', (x) => x);
  });

  after(async () => {
    await Promise.all([greedy?.close(), bystander?.close()]);
    await hub?.close();
  });

  it('a third subscription is refused with LimitError on the bus error channel', async () => {
    const refused = new Promise((resolve) => greedy.on('error', resolve));
    greedy.on('a', () => {});
    greedy.on('b', () => {});
    greedy.on('c', () => {});
    const err = await deadline(5000, 'E_LIMIT for the third subscription', refused);
    assert.ok(err instanceof LimitError, String(err));
    assert.equal(err.code, 'E_LIMIT');
    assert.match(err.message, /maxSubscriptionsPerPeer/);
    // The bystander's own subscriptions are its own budget, and it still gets events.
    const got = nextEvent(bystander, 'c');
    bystander.on('d', () => {});
    await bystander.invoke('echo', 1); // both subscriptions are in place once this returns
    greedy.emit('c', 'hello');
    assert.equal(await deadline(5000, 'event to the bystander', got), 'hello');
  });

  it('a second concurrent invoke is refused with LimitError; the first is unaffected', async () => {
    const first = greedy.invoke('never', undefined, { timeout: 0 });
    first.catch(() => {}); // settles with E_CLOSED when the buses close
    await assert.rejects(greedy.invoke('echo', 2), (err) => {
      assert.ok(err instanceof LimitError, String(err));
      assert.match(err.message, /maxPendingInvokesPerPeer/);
      return true;
    });
    assert.equal(await bystander.invoke('echo', 3), 3);
  });

  it('a limit option that is not a positive integer is refused before anything starts', () => {
    for (const name of ['maxSubscriptionsPerPeer', 'maxHandlersPerPeer', 'maxPendingInvokesPerPeer', 'maxConnections', 'maxHandshaking', 'maxTopic', 'handshakeMaxFrame', 'handshakeTimeoutMs']) {
      for (const bad of [0, -1, 1.5, 'x']) {
        assert.throws(() => new EventBus({ role: 'hub', [name]: bad }), (err) => {
          assert.ok(err instanceof InvalidArgumentError);
          assert.match(err.message, new RegExp(`"${name}" option`));
          return true;
        });
      }
    }
  });
});

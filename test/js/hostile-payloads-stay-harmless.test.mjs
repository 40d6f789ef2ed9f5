// Promises (issue 5, "Bad input"), checked through the hub rather than on the decoder alone
// (test/js/codec.test.mjs does that):
//  - a payload whose maps use `__proto__`, `constructor` or `prototype` as keys arrives with those
//    keys as own data properties; no prototype is reached or replaced;
//  - a payload beyond the receiver's decodeLimits reaches no listener: the receiving bus reports a
//    CodecError (E_DECODE) on its 'error' channel and goes on.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { EventBus } from '../../dist/esm/index.js';
import { deadline, nextEvent } from './support.mjs';

describe('hostile payloads stay harmless', { timeout: 20000 }, () => {
  /** @type {EventBus} */ let hub;
  /** @type {EventBus} */ let sender;

  before(async () => {
    hub = new EventBus({ role: 'hub', name: 'hub', decodeLimits: { maxDepth: 8, maxNodes: 1000 } });
    await hub.ready();
    const env = hub.childEnv();
    sender = new EventBus({ role: 'client', name: 'sender', endpoint: env.SWITCHBOARD_ENDPOINT, token: env.SWITCHBOARD_TOKEN });
    await sender.ready();
    hub.handle('sync', () => true);
  });

  after(async () => {
    await sender?.close();
    await hub?.close();
  });

  it('__proto__, constructor and prototype keys stay own data properties', async () => {
    const got = nextEvent(hub, 'proto');
    await sender.invoke('sync'); // the hub's subscription is in place before the emit
    const hostile = '{"__proto__": {"polluted": true}, "constructor": {"prototype": {"polluted": true}}, ' +
      '"nested": [{"__proto__": {"polluted": true}}], "prototype": {"polluted": true}}';
    sender.emit('proto', JSON.parse(hostile));
    const data = await deadline(5000, 'the event with hostile keys', got);
    assert.equal(Object.getPrototypeOf(data), Object.prototype);
    for (const key of ['__proto__', 'constructor', 'prototype']) assert.ok(Object.hasOwn(data, key), key);
    assert.equal(Object.getPrototypeOf(data.nested[0]), Object.prototype);
    assert.ok(Object.hasOwn(data.nested[0], '__proto__'));
    assert.deepEqual(Object.getOwnPropertyDescriptor(data, '__proto__').value, { polluted: true });
    assert.equal(data.polluted, undefined);
    assert.equal(data.nested[0].polluted, undefined);
    assert.equal(Object.prototype.polluted, undefined, 'Object.prototype is untouched');
  });

  it('a payload beyond the receiver\'s decodeLimits is reported, not delivered', async () => {
    const errors = [];
    const offError = hub.on('error', (err) => errors.push(err));
    const seen = [];
    const offDeep = hub.on('deep', (data) => seen.push(data));
    await sender.invoke('sync');
    let deep = 'bottom';
    for (let i = 0; i < 20; i++) deep = [deep];
    sender.emit('deep', deep);
    sender.emit('deep', new Array(5000).fill(1)); // 5001 values
    sender.emit('deep', [[['fine']]]);
    await sender.invoke('sync'); // the three events arrived before this reply
    assert.deepEqual(seen, [[[['fine']]]]);
    assert.equal(errors.length, 2);
    for (const err of errors) assert.equal(err.code, 'E_DECODE');
    assert.match(errors[0].message, /nesting deeper than 8/);
    assert.match(errors[1].message, /more than 1000 values/);
    offError();
    offDeep();
  });

  it('decodeLimits that are not positive integers are refused', () => {
    for (const bad of [{ maxDepth: 0 }, { maxNodes: -1 }, { maxDepth: 1.5 }, null, 5]) {
      assert.throws(() => new EventBus({ role: 'hub', decodeLimits: bad }), /decodeLimits/);
    }
  });
});

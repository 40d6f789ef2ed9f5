// Promise (issue 5, "Security"): the token never appears in a process's argv or in anything the
// bus reports: a child joins through the environment bus.childEnv() gives it, and neither the
// hub's nor a refused client's errors, connection events or stats carry the token.
//
// Roles: 'main' (the test process and the hub) and 'child' (a forked process that joins with
// childEnv() and reports its argv and /proc/self/cmdline).
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { inspect } from 'node:util';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { EventBus } from '../../dist/esm/index.js';
import { currentRole, deadline, exitCode, forkRole, guardAgainstOrphaning, messageFrom, requestClose } from './support.mjs';

const thisFile = fileURLToPath(import.meta.url);
const role = currentRole();

if (role === 'child') {
  guardAgainstOrphaning();
  const bus = new EventBus({ name: 'child' });
  await bus.ready();
  let cmdline = '';
  try {
    cmdline = readFileSync('/proc/self/cmdline', 'latin1');
  } catch {
    cmdline = '(no /proc here)';
  }
  process.send({ type: 'joined', argv: process.argv, execArgv: process.execArgv, cmdline });
  process.once('message', async () => {
    await bus.close();
    process.send({ type: 'closed' }, () => process.disconnect());
  });
} else {
  describe('the token stays out of argv and messages', { timeout: 30000 }, () => {
    /** @type {EventBus} */ let hub;
    let token = '';

    before(async () => {
      hub = new EventBus({ role: 'hub', name: 'hub' });
      await hub.ready();
      token = hub.childEnv().SWITCHBOARD_TOKEN;
      assert.match(token, /^[0-9a-f]{64}$/);
    });

    after(async () => {
      await hub?.close();
    });

    it('a child joins through its environment; its argv and cmdline hold no token', async () => {
      const env = hub.childEnv();
      assert.deepEqual(Object.keys(env).sort(), ['SWITCHBOARD_ENDPOINT', 'SWITCHBOARD_TOKEN']);
      const child = forkRole(thisFile, 'child', env);
      const joined = await deadline(15000, 'the child joined', messageFrom(child, (m) => m.type === 'joined'));
      assert.ok(!joined.argv.join(' ').includes(token), 'argv');
      assert.ok(!joined.execArgv.join(' ').includes(token), 'execArgv');
      assert.ok(!joined.cmdline.includes(token), '/proc/<pid>/cmdline');
      assert.ok(!joined.cmdline.includes(token.slice(0, 16)), 'not even a prefix');
      await deadline(5000, 'the child closed', requestClose(child));
      assert.deepEqual(await deadline(5000, 'the child exited', exitCode(child)), { code: 0, signal: null });
    });

    it('a refused client, its errors and every stats object never show the token', async () => {
      const wrong = 'f'.repeat(64);
      const events = [];
      const errors = [];
      const refused = new EventBus({
        role: 'client', name: 'refused', endpoint: hub.childEnv().SWITCHBOARD_ENDPOINT, token: wrong,
        reconnect: { maxAttempts: 1 },
      });
      refused.on('connection', (ev) => events.push(ev));
      refused.on('error', (err) => errors.push(err));
      const failed = await refused.ready().then(() => null, (err) => err);
      assert.ok(failed, 'a wrong token is refused');
      const said = [
        String(failed), failed.stack ?? '', JSON.stringify(events), errors.map(String).join(),
        JSON.stringify(refused.stats()), JSON.stringify(hub.stats()), inspect(refused, { showHidden: true, depth: 5 }),
        inspect(hub, { showHidden: true, depth: 5 }),
      ].join('\n');
      assert.match(said, /E_AUTH|token/, 'the refusal was collected');
      assert.ok(!said.includes(token), "the hub's token");
      assert.ok(!said.includes(wrong), 'the token the client presented');
      await refused.close();
    });
  });
}

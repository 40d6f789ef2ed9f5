// The subset of the bus's promises that runs on the platforms only an emulator can run here:
// linux-arm64 under qemu-user (test/platforms/qemu.sh) and win32-x64 under Wine
// (test/platforms/wine.sh), against the prebuilt binary for that platform. Every bus lives in a
// process of its own, over the platform's real transport (a Unix socket, a named pipe):
//   events       200 events from one client reach another, all of them, in order
//   invokes      a client's handler and the hub's handler answer another client
//   errors       a thrown user error arrives with its class; nobody serving is NoHandlerError
//   values       Date, BigInt, Map, Set, typed arrays, nested values and 1 MiB of bytes round-trip
//   reconnect    the hub is killed and restarted on the same endpoint and token: both clients
//                come back by themselves, re-subscribed, and events and invokes flow again
//   wrong token  a client with a wrong token is refused with E_AUTH
//   second hub   a second hub on the live endpoint is refused with E_ENDPOINT_IN_USE
// Not node:test: under Wine, node.exe's console handles fail (EBADF), so this program writes its
// report to the file named by SUBSET_REPORT (else to stdout), and test/platforms/*.sh read it.
// Roles are forked with child_process IPC (structured clone); the orchestrator ('main') holds no
// bus. SUBSET_EXEC and SUBSET_EXEC_ARGS (JSON) start the roles through another program: qemu.sh
// runs 'main' on the host's Node.js and each role as `qemu-aarch64 ... node`.
import assert from 'node:assert/strict';
import { fork } from 'node:child_process';
import fs from 'node:fs';
import { fileURLToPath } from 'node:url';
import { isDeepStrictEqual } from 'node:util';

const thisFile = fileURLToPath(import.meta.url);
const role = process.argv[2] ?? 'main';
const N = 200;

function log(line) {
  if (process.env.SUBSET_REPORT) fs.appendFileSync(process.env.SUBSET_REPORT, line + '\n');
  else console.log(line);
}

// --- Roles ---------------------------------------------------------------------------------------

async function loadBus() {
  return import('../../dist/esm/index.js');
}

function send(msg) {
  process.send?.(msg);
}

// A role must not outlive the orchestrator (a crashed run would leave emulated processes behind):
// a channel that closes before the role leaves means the orchestrator is gone.
let leaving = false;
function guardAgainstOrphaning() {
  process.on('disconnect', () => {
    if (!leaving) process.exit(3);
  });
}
function leave() {
  leaving = true;
  process.disconnect();
}

async function runHub() {
  const { EventBus } = await loadBus();
  const [endpoint, token] = process.argv.slice(3);
  let bus;
  try {
    bus = new EventBus({ role: 'hub', name: 'subset-hub', ...(endpoint ? { endpoint, token } : {}) });
    await bus.ready();
  } catch (err) {
    send({ type: 'refused', name: err.name, code: err.code, message: err.message });
    leave();
    return;
  }
  bus.handle('hub:echo', (v) => v);
  bus.handle('hub:ping', () => 'pong');
  process.on('message', async (msg) => {
    if (msg.type === 'close') {
      await bus.close();
      send({ type: 'closed' });
      leave();
    }
  });
  send({ type: 'ready', env: bus.childEnv(), pid: process.pid, where: `${process.platform}-${process.arch}, Node.js ${process.version}` });
}

async function runClient() {
  const { EventBus } = await loadBus();
  const bus = new EventBus({ role: 'client', name: role, reconnect: { initialMs: 50, maxMs: 300 } });
  bus.on('connection', (ev) => send({ type: 'state', state: ev.state, code: ev.code }));
  if (role === 'client-a') {
    let got = [];
    bus.on('ev', (data) => got.push(data.i));
    bus.on('ev:end', (data) => {
      const inOrder = got.every((v, i) => v === i);
      send({ type: 'events', count: got.length, expected: data.count, inOrder, tag: data.tag });
      got = [];
    });
    bus.handle('add', ({ a, b }) => a + b);
    bus.handle('echo', (v) => v);
    bus.handle('fail', () => {
      class QuotaError extends Error {}
      throw Object.assign(new QuotaError('over quota'), { limit: 5 });
    });
  }
  await bus.ready();
  // A round trip through the hub: what this client sent before (its subscriptions, its
  // handlers) is in force there before the orchestrator is told it is ready.
  assert.equal(await bus.invoke('hub:ping'), 'pong');
  process.on('message', async (msg) => {
    try {
      send({ type: 'result', id: msg.id, value: await command(bus, msg) });
    } catch (err) {
      send({ type: 'result', id: msg.id, error: { name: err.name, code: err.code, message: err.message } });
    }
    if (msg.cmd === 'close') leave();
  });
  send({ type: 'ready' });
}

function sampleValues() {
  const bytes = new Uint8Array(1 << 20);
  for (let i = 0; i < bytes.length; i++) bytes[i] = (i * 31) & 0xff;
  return {
    date: new Date(86_400_000),
    big: 2n ** 70n + 1n,
    negative: -(2n ** 65n),
    map: new Map([[1, 'one'], ['two', { n: 2 }]]),
    set: new Set(['a', 7, null]),
    floats: new Float64Array([0.5, -1e300, Number.MIN_VALUE]),
    nested: { list: [1, [2, [3, { deep: 'é€𝄞' }]]], none: null, yes: true },
    float: 3.141592653589793,
    bytes,
  };
}

async function command(bus, msg) {
  switch (msg.cmd) {
    case 'emit': {
      for (let i = 0; i < msg.n; i++) bus.emit('ev', { i, pad: 'x'.repeat(i % 64) });
      bus.emit('ev:end', { count: msg.n, tag: msg.tag });
      return true;
    }
    case 'invoke':
      return bus.invoke(msg.name, msg.arg);
    case 'values': {
      const sent = sampleValues();
      const back = await bus.invoke('echo', sent);
      const viaHub = await bus.invoke('hub:echo', sent);
      const bad = Object.keys(sent).filter((k) => !isDeepStrictEqual(back[k], sent[k]) || !isDeepStrictEqual(viaHub[k], sent[k]));
      return { bad, keys: Object.keys(back).length };
    }
    case 'close':
      await bus.close();
      return true;
    default:
      throw new Error(`unknown command ${msg.cmd}`);
  }
}

async function runIntruder() {
  const { EventBus } = await loadBus();
  const [endpoint, token] = process.argv.slice(3);
  const bus = new EventBus({ role: 'client', name: 'intruder', endpoint, token, reconnect: { maxAttempts: 1 } });
  const states = [];
  bus.on('connection', (ev) => states.push(`${ev.state}:${ev.code ?? ''}`));
  bus.on('error', () => {});
  const failed = await bus.ready().then(() => null, (err) => err);
  send({ type: 'outcome', joined: !failed, code: failed?.code, message: failed?.message, states });
  await bus.close();
  leave();
}

// --- The orchestrator ------------------------------------------------------------------------------

const children = new Set();

// Forks a role with `env` added (a client gets the hub's childEnv(): endpoint and token in its
// environment, never in argv).
function start(roleName, args = [], env = {}) {
  const execArgs = process.env.SUBSET_EXEC_ARGS ? JSON.parse(process.env.SUBSET_EXEC_ARGS) : [];
  const child = fork(thisFile, [roleName, ...args], {
    env: { ...process.env, ...env },
    serialization: 'advanced',
    stdio: ['ignore', 'pipe', 'pipe', 'ipc'],
    ...(process.env.SUBSET_EXEC ? { execPath: process.env.SUBSET_EXEC, execArgv: execArgs } : {}),
  });
  const rec = { child, log: [], waiters: [], output: '', exited: null };
  rec.exited = new Promise((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
  child.stdout.setEncoding('utf8').on('data', (s) => (rec.output += s));
  child.stderr.setEncoding('utf8').on('data', (s) => (rec.output += s));
  child.on('message', (msg) => {
    rec.log.push(msg);
    for (const w of [...rec.waiters]) {
      if (w.pred(msg)) {
        rec.waiters.splice(rec.waiters.indexOf(w), 1);
        w.resolve(msg);
      }
    }
  });
  children.add(rec);
  return rec;
}

function within(ms, what, promise) {
  let timer;
  const limit = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms waiting for: ${what}`)), ms);
  });
  return Promise.race([promise, limit]).finally(() => clearTimeout(timer));
}

function message(rec, pred, what, ms = 60_000) {
  const seen = rec.log.find(pred);
  if (seen) return Promise.resolve(seen);
  const died = rec.exited.then((e) => {
    throw new Error(`${what}: the process exited first (${JSON.stringify(e)}); its output:\n${rec.output}`);
  });
  return within(ms, what, Promise.race([new Promise((resolve) => rec.waiters.push({ pred, resolve })), died]));
}

let nextId = 1;
async function ask(rec, cmd, extra = {}, ms = 60_000) {
  const id = nextId++;
  rec.child.send({ cmd, id, ...extra });
  const reply = await message(rec, (m) => m.type === 'result' && m.id === id, `${cmd} answered`, ms);
  return reply;
}

async function main() {
  if (process.env.SUBSET_REPORT) fs.writeFileSync(process.env.SUBSET_REPORT, '');
  const results = [];
  let ctx = {};
  const cases = [
    ['a hub and two clients start in separate processes', async () => {
      ctx.hub = start('hub');
      const ready = await message(ctx.hub, (m) => m.type === 'ready' || m.type === 'refused', 'the hub is ready');
      assert.equal(ready.type, 'ready', `the hub did not start: ${JSON.stringify(ready)}`);
      ctx.env = ready.env;
      // SUBSET_EXPECT: the platform the roles must run on (not the orchestrator's own).
      const expect = process.env.SUBSET_EXPECT;
      if (expect) assert.ok(ready.where.startsWith(`${expect},`), `the hub runs on ${ready.where}, not ${expect}`);
      ctx.a = start('client-a', [], ctx.env);
      ctx.b = start('client-b', [], ctx.env);
      await message(ctx.a, (m) => m.type === 'ready', 'client-a is ready');
      await message(ctx.b, (m) => m.type === 'ready', 'client-b is ready');
      return `roles on ${ready.where}; endpoint ${ctx.env.SWITCHBOARD_ENDPOINT}`;
    }],
    ['events: 200 events reach the other client, all of them, in order', async () => {
      const got = message(ctx.a, (m) => m.type === 'events' && m.tag === 'first', 'client-a received the events');
      const r = await ask(ctx.b, 'emit', { n: N, tag: 'first' });
      assert.equal(r.error, undefined, JSON.stringify(r.error));
      const ev = await got;
      assert.deepEqual({ count: ev.count, inOrder: ev.inOrder }, { count: N, inOrder: true });
    }],
    ['invokes: a client\'s handler and the hub\'s handler answer', async () => {
      const sum = await ask(ctx.b, 'invoke', { name: 'add', arg: { a: 2, b: 40 } });
      assert.equal(sum.value, 42, JSON.stringify(sum.error));
      const echo = await ask(ctx.b, 'invoke', { name: 'hub:echo', arg: 'through the hub' });
      assert.equal(echo.value, 'through the hub');
    }],
    ['errors: a thrown QuotaError arrives with its class; nobody serving is NoHandlerError', async () => {
      const thrown = await ask(ctx.b, 'invoke', { name: 'fail', arg: null });
      assert.ok(thrown.error, 'the invoke rejected');
      assert.equal(thrown.error.message, 'over quota');
      const nobody = await ask(ctx.b, 'invoke', { name: 'nobody:serves', arg: 1 });
      assert.equal(nobody.error?.name, 'NoHandlerError', JSON.stringify(nobody.error));
      assert.equal(nobody.error?.code, 'E_NO_HANDLER');
    }],
    ['values: Date, BigInt, Map, Set, typed arrays, nested values and 1 MiB of bytes round-trip', async () => {
      const r = await ask(ctx.b, 'values', {}, 120_000);
      assert.equal(r.error, undefined, JSON.stringify(r.error));
      assert.deepEqual(r.value.bad, [], `values that changed on the way: ${r.value.bad.join(', ')}`);
    }],
    ['reconnect: the hub is killed and restarted on its endpoint; both clients come back', async () => {
      const aCount = ctx.a.log.filter((m) => m.type === 'state' && m.state === 'connected').length;
      const bCount = ctx.b.log.filter((m) => m.type === 'state' && m.state === 'connected').length;
      ctx.hub.child.kill('SIGKILL');
      await within(30_000, 'the killed hub exited', ctx.hub.exited);
      await message(ctx.a, (m) => m.type === 'state' && m.state !== 'connected', 'client-a saw the hub go');
      ctx.hub = start('hub', [ctx.env.SWITCHBOARD_ENDPOINT, ctx.env.SWITCHBOARD_TOKEN]);
      const ready = await message(ctx.hub, (m) => m.type === 'ready' || m.type === 'refused', 'the new hub is ready');
      assert.equal(ready.type, 'ready', `the new hub did not start: ${JSON.stringify(ready)}`);
      const again = (rec, n) => message(rec, () => rec.log.filter((m) => m.type === 'state' && m.state === 'connected').length > n, 'connected again', 60_000);
      await again(ctx.a, aCount);
      await again(ctx.b, bCount);
      // client-a re-subscribed on its own: a round trip of its own proves the hub has it.
      await ask(ctx.a, 'invoke', { name: 'hub:ping' });
      const got = message(ctx.a, (m) => m.type === 'events' && m.tag === 'after', 'events after the restart');
      await ask(ctx.b, 'emit', { n: N, tag: 'after' });
      const ev = await got;
      assert.deepEqual({ count: ev.count, inOrder: ev.inOrder }, { count: N, inOrder: true });
      assert.equal((await ask(ctx.b, 'invoke', { name: 'add', arg: { a: 1, b: 2 } })).value, 3);
    }],
    ['wrong token: a client presenting another token is refused with E_AUTH', async () => {
      const wrong = 'f'.repeat(64);
      const intruder = start('intruder', [ctx.env.SWITCHBOARD_ENDPOINT, wrong]);
      const out = await message(intruder, (m) => m.type === 'outcome', 'the intruder\'s outcome');
      assert.equal(out.joined, false, 'the wrong token was accepted');
      assert.match(`${out.code} ${out.message} ${out.states.join(' ')}`, /E_AUTH/);
      return `${out.code}: ${out.message}`;
    }],
    ['second hub: a hub on the live endpoint is refused with E_ENDPOINT_IN_USE', async () => {
      const second = start('hub', [ctx.env.SWITCHBOARD_ENDPOINT, ctx.env.SWITCHBOARD_TOKEN]);
      const out = await message(second, (m) => m.type === 'ready' || m.type === 'refused', 'the second hub\'s outcome');
      assert.equal(out.type, 'refused', 'a second hub started on a live endpoint');
      assert.equal(out.code, 'E_ENDPOINT_IN_USE', JSON.stringify(out));
      // The first hub still serves.
      assert.equal((await ask(ctx.b, 'invoke', { name: 'hub:ping' })).value, 'pong');
      return out.message;
    }],
    ['everything closes and exits with code 0', async () => {
      for (const rec of [ctx.a, ctx.b]) await ask(rec, 'close');
      ctx.hub.child.send({ type: 'close' });
      await message(ctx.hub, (m) => m.type === 'closed', 'the hub closed');
      for (const rec of [ctx.a, ctx.b, ctx.hub]) {
        assert.deepEqual(await within(30_000, 'exit', rec.exited), { code: 0, signal: null });
      }
    }],
  ];
  let n = 0;
  let skipRest = false;
  for (const [name, fn] of cases) {
    n++;
    if (skipRest) {
      results.push(false);
      log(`not ok ${n} - ${name} # not run: an earlier case left no bus to run on`);
      continue;
    }
    const t0 = Date.now();
    try {
      const note = await fn();
      results.push(true);
      log(`ok ${n} - ${name} (${Date.now() - t0} ms)${note ? ` [${note}]` : ''}`);
    } catch (err) {
      results.push(false);
      log(`not ok ${n} - ${name} (${Date.now() - t0} ms)\n  ${String(err.stack ?? err).split('\n').join('\n  ')}`);
      if (n === 1) skipRest = true;
    }
  }
  for (const rec of children) if (rec.child.exitCode === null && rec.child.signalCode === null) rec.child.kill('SIGKILL');
  const passed = results.filter(Boolean).length;
  log(`subset: ${passed} passed, ${results.length - passed} failed (${process.platform}-${process.arch}, Node.js ${process.version})`);
  process.exitCode = passed === results.length ? 0 : 1;
}

switch (role) {
  case 'main':
    await main();
    break;
  case 'hub':
    guardAgainstOrphaning();
    await runHub();
    break;
  case 'client-a':
  case 'client-b':
    guardAgainstOrphaning();
    await runClient();
    break;
  case 'intruder':
    guardAgainstOrphaning();
    await runIntruder();
    break;
  default:
    throw new Error(`unknown role ${role}`);
}

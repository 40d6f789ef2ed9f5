// Promise (issue 10): docs/PROTOCOL.md is true. A client written in Python from the document
// alone (test/protocol/, Debian's python3-msgpack) joins a real hub, subscribes, emits, invokes
// Node.js handlers, serves invokes from Node.js, receives Date, BigInt and bytes and decodes a
// remote error; and every byte example of the document that carries a label
// (`<!-- example: NAME -->` before its fenced block) is compared with the frame that really
// crossed the wire: hub -> client frames as the Python client received them, client -> hub frames
// as a Node.js client sent them through a recording proxy.
//
// Roles: only 'main' (the hub, a Node.js client behind the proxy, and the Python process it
// spawns). If python3 or its msgpack module is missing, the test fails and says to run
// `bash .ci/deps`: a conformance test that skips itself proves nothing.
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createConnection, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { EventBus } from '../../dist/esm/index.js';
import { readFrames } from '../../dist/esm/wire.js';
import { deadline, nextEvent } from './support.mjs';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const doc = readFileSync(join(root, 'docs/PROTOCOL.md'), 'utf8');
const script = join(root, 'test/protocol/conformance.py');
// A fixed token, so that the HELLO example's bytes are exact (a hub may be given any string).
const TOKEN = 'a'.repeat(64);

/**
 * The interpreter that serves Debian's python3-msgpack: /usr/bin/python3 first (a python3 earlier
 * on PATH, such as pyenv's, does not see Debian's packages), then python3 on PATH.
 * SWITCHBOARD_PYTHON overrides both.
 */
function findPython() {
  const tried = [];
  const candidates = process.env.SWITCHBOARD_PYTHON ? [process.env.SWITCHBOARD_PYTHON] : ['/usr/bin/python3', 'python3'];
  for (const py of candidates) {
    if (py.startsWith('/') && !existsSync(py)) {
      tried.push(`${py}: not found`);
      continue;
    }
    const r = spawnSync(py, ['-c', 'import msgpack, sys; sys.exit(0 if sys.version_info >= (3, 9) else 1)'], { encoding: 'utf8', env: pythonEnv() });
    if (r.status === 0) return { python: py, tried };
    tried.push(`${py}: ${r.error ? r.error.message : (r.stderr.trim().split('\n').pop() || `exit ${r.status}`)}`);
  }
  return { python: undefined, tried };
}

/**
 * The environment for python3: this process's without LD_PRELOAD, which the ASan lane of .ci/run
 * sets for node (the addon is what runs under ASan, not the Python client), and without writing
 * __pycache__ into the source tree.
 * @param {Record<string, string>} [extra]
 */
function pythonEnv(extra = {}) {
  const { LD_PRELOAD: _, ...env } = process.env;
  return { ...env, PYTHONDONTWRITEBYTECODE: '1', ...extra };
}

// --- The document's byte examples ---------------------------------------------------------------

/**
 * Every labelled example: `<!-- example: NAME [; varies: key, key] -->`, then a fenced block whose
 * lines are hex bytes, either a dump (`0000  00 01 ...`, offsets checked) or a breakdown (`00 01
 * ...   what they are`); text after two spaces is commentary. One NAME may label several blocks
 * (a dump and its breakdown): each must be the same bytes.
 * @returns {Map<string, { blocks: Buffer[], varies: string[] }>}
 */
function documentExamples() {
  const examples = new Map();
  const lines = doc.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const m = /^<!-- example: ([a-z0-9-]+)(?:; varies: ([a-z_, ]+))? -->$/.exec(lines[i]);
    if (!m) continue;
    const name = m[1];
    assert.match(lines[i + 1] ?? '', /^```/, `example ${name}: a fenced block must follow its label`);
    const bytes = [];
    for (let j = i + 2; ; j++) {
      assert.ok(j < lines.length, `example ${name}: unterminated block`);
      const line = lines[j];
      if (line.startsWith('```')) break;
      const parts = line.trim().split(/ {2,}/);
      let hex = parts[0];
      if (/^[0-9a-f]{4}$/.test(parts[0])) {
        assert.equal(parseInt(parts[0], 16), bytes.length, `example ${name}: the offset of "${line}"`);
        hex = parts[1] ?? '';
      }
      assert.match(hex, /^[0-9a-f]{2}( [0-9a-f]{2})*$/, `example ${name}: "${line}" is not hex bytes`);
      for (const b of hex.split(' ')) bytes.push(parseInt(b, 16));
    }
    const entry = examples.get(name) ?? { blocks: [], varies: [] };
    entry.blocks.push(Buffer.from(bytes));
    if (m[2]) entry.varies.push(...m[2].split(',').map((s) => s.trim()));
    examples.set(name, entry);
  }
  return examples;
}

// --- Reading frames (the document's section 3, independently of lib/wire.ts) ------------------------

/** @param {Buffer} b @param {number} at */
function uintAt(b, at) {
  const t = b[at];
  if (t < 0x80) return { value: t, width: 1 };
  const n = { 0xcc: 1, 0xcd: 2, 0xce: 4, 0xcf: 8, 0xd0: 1, 0xd1: 2, 0xd2: 4, 0xd3: 8 }[t];
  assert.ok(n, `not an unsigned integer at ${at}: 0x${t.toString(16)}`);
  return { value: Number(b.readUIntBE(at + 1, Math.min(n, 6))), width: 1 + n };
}

/** @param {Buffer} b @param {number} at */
function strAt(b, at) {
  const t = b[at];
  if ((t & 0xe0) === 0xa0) return { value: b.toString('utf8', at + 1, at + 1 + (t & 31)), width: 1 + (t & 31) };
  const w = { 0xd9: 1, 0xda: 2, 0xdb: 4 }[t];
  assert.ok(w, `not a str at ${at}`);
  const n = b.readUIntBE(at + 1, w);
  return { value: b.toString('utf8', at + 1 + w, at + 1 + w + n), width: 1 + w + n };
}

/** The envelope of one whole frame, and where its payload's bin header is. */
function envelopeOf(/** @type {Buffer} */ f) {
  let at = 4;
  at += { 0x97: 1, 0xdc: 3, 0xdd: 5 }[f[at]] ?? assert.fail('not an array of 7');
  const fields = {};
  for (const key of ['version', 'kind', 'id', 'topic', 'flags', 'sender']) {
    const v = key === 'topic' ? strAt(f, at) : uintAt(f, at);
    fields[key] = v.value;
    at += v.width;
  }
  return { ...fields, binAt: at };
}

/** Splits a byte stream into whole frames. */
function framesOf(/** @type {Buffer} */ stream) {
  const frames = [];
  for (let at = 0; at + 4 <= stream.length; ) {
    const end = at + 4 + stream.readUInt32BE(at);
    frames.push(stream.subarray(at, end));
    at = end;
  }
  return frames;
}

/**
 * `actual` with the value of map key `key` (a uint: a pid) replaced by the value `example` has
 * there, and the frame and bin lengths adjusted: the only difference the document allows.
 */
function withValueOf(/** @type {Buffer} */ actual, /** @type {Buffer} */ example, /** @type {string} */ key) {
  const k = Buffer.concat([Buffer.from([0xa0 | key.length]), Buffer.from(key)]);
  const ia = actual.indexOf(k);
  const ie = example.indexOf(k);
  assert.ok(ia > 0 && ie > 0, `key '${key}' in both the frame and the example`);
  const a = uintAt(actual, ia + k.length);
  const e = uintAt(example, ie + k.length);
  const out = Buffer.concat([
    actual.subarray(0, ia + k.length),
    example.subarray(ie + k.length, ie + k.length + e.width),
    actual.subarray(ia + k.length + a.width),
  ]);
  const delta = e.width - a.width;
  out.writeUInt32BE(out.readUInt32BE(0) + delta, 0);
  const { binAt } = envelopeOf(out);
  const w = { 0xc4: 1, 0xc5: 2, 0xc6: 4 }[out[binAt]];
  out.writeUIntBE(out.readUIntBE(binAt + 1, w) + delta, binAt + 1, w);
  return out;
}

describe('docs/PROTOCOL.md is true: a Python client written from it, and its byte examples', { timeout: 30000 }, () => {
  /** @type {EventBus} */ let hub;
  /** @type {EventBus} */ let worker;
  /** @type {import('node:net').Server} */ let proxy;
  let proxyDir = '';
  /** @type {import('node:child_process').ChildProcess | undefined} */ let py;
  const upstream = []; // bytes the Node.js client sent (through the proxy)
  /** @type {Map<string, Buffer>} */ const captured = new Map();
  let pyOut = '';
  let pyErr = '';
  let pyDone;
  const got = {}; // what the Node.js side received
  // A failure while setting up fails every test with its reason (a failed before() hook would
  // only cancel them, and node --test would count no failure).
  /** @type {unknown} */ let setupError;
  const setUp = () => {
    if (setupError) throw setupError;
  };

  before(async () => {
    try {
      await scenario();
    } catch (err) {
      setupError = err;
    }
  });

  async function scenario() {
    const { python, tried } = findPython();
    if (!python) {
      assert.fail(
        `python3 with the msgpack module is needed for this test and was not found (${tried.join('; ')}). ` +
          'Run `bash .ci/deps`: it installs python3 and python3-msgpack.',
      );
    }

    hub = new EventBus({ role: 'hub', name: 'hub', token: TOKEN });
    await hub.ready();
    hub.handle('node:add', ({ a, b }) => a + b);
    hub.handle('node:values', () => ({ date: new Date(0), big: 2n ** 70n, bytes: new Uint8Array([0xde, 0xad]), buf: Buffer.from('hi') }));
    hub.handle('node:fail', () => {
      const err = new RangeError('quota exceeded');
      Object.assign(err, { code: 'E_QUOTA', limit: 3 });
      throw err;
    });
    const hello = nextEvent(hub, 'py:hello');
    const odd = new Promise((res) => hub.on('py:odd', (data, ctx) => res({ data, sender: ctx.sender.id })));
    const raw = nextEvent(hub, 'py:raw');
    hub.on('py:ready', () => {
      hub.emit('job:progress', { id: 'a', percent: 5 });
      hub.emit('job:values', { date: new Date(1700000000000), big: -(2n ** 64n), small: 5n, bytes: new Uint8Array([1, 2, 3]), buf: Buffer.from([4, 5]), undef: undefined, nan: NaN });
      got.echo = hub.invoke('py:echo', { n: 1 }, { timeout: 10000 });
      got.echo.catch(() => {}); // awaited below; handled here if the scenario fails first
      got.fail = hub.invoke('py:fail', { n: 7 }, { timeout: 10000 }).then(() => assert.fail('py:fail resolved'), (err) => err);
    });

    // A Node.js client behind a proxy that records both directions.
    proxyDir = mkdtempSync(join(tmpdir(), 'sb-protocol-'));
    const proxyPath = join(proxyDir, 'proxy.sock');
    proxy = createServer((client) => {
      const up = createConnection(hub.childEnv().SWITCHBOARD_ENDPOINT);
      client.on('data', (d) => (upstream.push(d), up.write(d)));
      up.pipe(client);
      client.on('close', () => up.destroy());
      up.on('close', () => client.destroy());
      client.on('error', () => {});
      up.on('error', () => {});
    });
    await new Promise((res) => proxy.listen(proxyPath, res));
    worker = new EventBus({ role: 'client', name: 'worker', endpoint: proxyPath, token: TOKEN });
    await deadline(10000, 'the Node.js client joined through the proxy', worker.ready());
    worker.on('job:*', () => {});
    const workerOdd = new Promise((res) => worker.on('py:odd', (data, ctx) => res({ data, sender: ctx.sender.id })));
    worker.emit('job:progress', { id: 'a', percent: 5 });
    // Its subscriptions are in place once a later request on the same connection is answered.
    assert.equal(await deadline(10000, 'node:add from the Node.js client', worker.invoke('node:add', { a: 1, b: 1 })), 2);

    const peers = [hub.stats().peerId, ...hub.stats().peers.map((p) => p.id)].sort((a, b) => a - b);
    assert.deepEqual(peers, [1, 2], 'the hub process is peer 1, the Node.js client peer 2');
    py = spawn(python, [script], {
      // Discovery (section 1.3): the endpoint and the token are found in the environment.
      env: pythonEnv({ ...hub.childEnv(), CONFORMANCE_PEERS: peers.join(',') }),
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    py.stdout.setEncoding('utf8').on('data', (s) => (pyOut += s));
    py.stderr.setEncoding('utf8').on('data', (s) => (pyErr += s));
    const exited = new Promise((res) => py.once('exit', (code, signal) => res({ code, signal })));
    pyDone = await deadline(15000, 'the Python client finished', exited).catch((err) => {
      throw new Error(`${err.message}\nits stderr:\n${pyErr}\nits stdout:\n${pyOut}`);
    });
    if (pyDone.code !== 0) {
      throw new Error(`the Python client failed (${JSON.stringify(pyDone)}):\n${pyErr}\nits stdout:\n${pyOut}`);
    }
    for (const line of pyOut.split('\n').filter(Boolean)) {
      const msg = JSON.parse(line);
      if (msg.capture) captured.set(msg.capture, Buffer.from(msg.hex, 'hex'));
    }
    got.hello = await deadline(5000, 'py:hello', hello);
    got.odd = await deadline(5000, 'py:odd at the hub process', odd);
    got.workerOdd = await deadline(5000, 'py:odd at the Node.js client', workerOdd);
    got.raw = await deadline(5000, 'py:raw', raw);
    got.echo = await deadline(5000, 'py:echo', got.echo);
    got.fail = await deadline(5000, 'py:fail', got.fail);
  }

  after(async () => {
    if (py && py.exitCode === null && py.signalCode === null) py.kill('SIGKILL');
    await worker?.close();
    await new Promise((res) => (proxy ? proxy.close(res) : res()));
    await hub?.close();
    if (proxyDir) rmSync(proxyDir, { recursive: true, force: true });
  });

  it('the Python client keeps every promise it checks (join, subscribe, emit, invoke, serve, errors)', () => {
    setUp();
    assert.deepEqual(pyDone, { code: 0, signal: null });
    const done = JSON.parse(pyOut.trim().split('\n').pop());
    assert.equal(done.done, true);
    assert.deepEqual(done.left, [], 'frames the Python client received and did not expect');
  });

  it('what Python encodes arrives in Node.js with its types: Date, BigInt, bytes, Buffer, undefined', () => {
    setUp();
    assert.deepEqual(got.hello, {
      from: 'python', when: new Date(1700000000000), big: -(2n ** 70n), bytes: new Uint8Array([0, 1, 255]),
      buf: Buffer.from('xy'), undef: undefined, list: [1, 'a', null, true, 1.5],
    });
    assert.ok(!Buffer.isBuffer(got.hello.bytes) && Buffer.isBuffer(got.hello.buf));
  });

  it('every encoding the hub accepts reaches Node.js receivers; nil is undefined, a raw payload a Buffer', () => {
    setUp();
    assert.deepEqual(got.odd, { data: undefined, sender: 3 });
    assert.deepEqual(got.workerOdd, { data: undefined, sender: 3 });
    assert.ok(Buffer.isBuffer(got.raw));
    assert.deepEqual(got.raw, Buffer.from('raw \xff bytes', 'latin1'));
  });

  it('Node.js invokes a Python handler: its result, and its error with the code from the ext 4 map', () => {
    setUp();
    assert.deepEqual(got.echo, { n: 2, echo: { n: 1 } });
    assert.equal(got.fail.code, 'E_BAD_N');
    assert.equal(got.fail.name, 'ValueError');
    assert.equal(got.fail.message, 'bad n: 7');
    assert.equal(got.fail.n, 7);
  });

  it("every labelled byte example is a frame that crossed the wire (pids masked as the document says)", () => {
    setUp();
    // Client -> hub frames of the reference client, as the proxy saw them.
    const sent = framesOf(Buffer.concat(upstream));
    const pick = (kind, topic) => sent.find((f) => envelopeOf(f).kind === kind && envelopeOf(f).topic === topic);
    captured.set('hello-sent', sent[0]);
    captured.set('subscribe-sent', pick(3, 'job:*'));
    captured.set('event-sent', pick(5, 'job:progress'));
    assert.equal(envelopeOf(sent[0]).kind, 1, 'the first frame a client sends is HELLO');

    const examples = documentExamples();
    assert.ok(examples.size >= 10, `labelled examples found in docs/PROTOCOL.md: ${[...examples.keys()]}`);
    const report = [];
    for (const [name, { blocks, varies }] of examples) {
      let actual = captured.get(name);
      assert.ok(actual, `example ${name}: no frame of that name was captured (captured: ${[...captured.keys()]})`);
      for (const block of blocks) {
        for (const key of varies) actual = withValueOf(actual, block, key);
        if (!actual.equals(block)) {
          report.push(`example ${name}:\n  document: ${block.toString('hex').replace(/(..)/g, '$1 ')}\n  wire:     ${actual.toString('hex').replace(/(..)/g, '$1 ')}`);
        }
      }
    }
    for (const name of captured.keys()) assert.ok(examples.has(name), `captured frame ${name} has no example in the document`);
    assert.deepEqual(report, [], report.join('\n'));
  });

  it('the Node.js frame reader takes every integer and array form of section 3, and no negative value', () => {
    const frame = (hex) => Buffer.from((hex.length / 2).toString(16).padStart(8, '0') + hex, 'hex');
    const read = (hex) => {
      const out = [];
      readFrames(frame(hex), (env) => out.push({ ...env, payload: [...env.payload] }));
      return out[0];
    };
    // array 32, int 8 version, int 16 kind, int 32 id, str 16 topic, int 64 flags, uint 64 sender, bin 16.
    const odd = 'dd00000007' + 'd001' + 'd10005' + 'd20000002a' + 'da0001' + '74' + 'd30000000000000001' + 'cf0000000000000009' + 'c50001' + '07';
    assert.deepEqual(read(odd), { kind: 5, id: 42, topic: 't', flags: 1, sender: 9, payload: [7] });
    assert.deepEqual(read('dc0007' + '01' + '05' + '00' + 'a0' + '00' + '00' + 'c0'), { kind: 5, id: 0, topic: '', flags: 0, sender: 0, payload: [] });
    for (const negative of ['d0ff', 'd1ffff', 'd2ffffffff', 'd3ffffffffffffffff', 'ff']) {
      assert.throws(() => read('97' + '01' + '05' + negative + 'a0' + '00' + '00' + 'c0'), RangeError, negative);
    }
    assert.throws(() => read('dc0006' + '01' + '05' + '00' + 'a0' + '00' + '00'), /array of 7/);
  });

  it('nothing is left pending at the hub', () => {
    setUp();
    const s = hub.stats();
    assert.equal(s.invokes.pending, 0);
    assert.equal(s.invokes.serving, 0);
    assert.equal(s.hub.pendingInvokes, 0);
  });
});

// Contender "child_process.fork, serialization: 'advanced'": Node's own parent-child channel with
// structured clone (V8's serializer), so typed arrays and Maps cross as they are. A is the parent
// and forks B (and C) itself; it relays between its children in JavaScript where the topology
// needs a middle (S5), as an Electron main process relays between its children.
//
//   node fork-advanced.mjs a <scenario> <n>      (B and C are forked by A: `<role> <scenario> <n> child`)
//
// The orchestrator talks to B and C through A: `{ type: 'spawn' | 'to' }` down, `{ type: 'from' }`
// up; control messages carry `type`, measured ones `k`, on the same channel, and control only
// flows before and after the measured phase. Messages are `{ k, i, t, d }` objects.
//
// Flow control: send() reports its backlog only as a boolean, so a sender asks for a completion
// callback every 256th message (every message for bulk payloads) and waits while more than 8192
// messages or 4 MiB of payload bytes are unconfirmed. A relay cannot stop reading a child's
// channel; it forwards what arrives.
import { fork } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { runRole } from './common.mjs';
import { Router, Client } from './router.mjs';

const [role, scenario, nArg] = process.argv.slice(2);
const script = fileURLToPath(import.meta.url);
const MAX_MESSAGES = 8192;
const MAX_BYTES = 4 * 1024 * 1024;
const EVERY = 256;

class Channel {
  /** `proc` is a ChildProcess (in A) or `process` (in a child). */
  constructor(proc, onFrame) {
    this.proc = proc;
    this.sent = 0;
    this.acked = 0;
    this.bytes = 0;
    this.waiters = [];
    proc.on('message', (m) => {
      if (m.k !== undefined) onFrame(this, m.k, m.i, m.t, m, () => m.d);
    });
  }

  #post(m) {
    const seq = ++this.sent;
    const size = m.d instanceof Uint8Array ? m.d.byteLength : 0;
    if (size === 0 && seq % EVERY !== 0) {
      this.proc.send(m);
      return;
    }
    this.bytes += size;
    this.proc.send(m, undefined, undefined, () => {
      this.acked = Math.max(this.acked, seq);
      this.bytes -= size;
      if (!this.pressure()) for (const w of this.waiters.splice(0)) w();
    });
  }

  send(kind, id, topic, value) {
    this.#post({ k: kind, i: id, t: topic, d: value });
  }

  encode(kind, id, topic, value) {
    return { k: kind, i: id, t: topic, d: value };
  }

  forward(m, id) {
    this.#post(id === undefined ? m : { ...m, i: id });
  }

  pressure() {
    return this.sent - this.acked > MAX_MESSAGES || this.bytes > MAX_BYTES;
  }

  drained() {
    return this.pressure() ? new Promise((resolve) => this.waiters.push(resolve)) : Promise.resolve();
  }

  pause() {}
  resume() {}
}

const children = new Map();

const transport = {
  async serve() {
    const router = new Router();
    return {
      info: {},
      emit: (topic, value) => router.emit(topic, value),
      invoke: (method, req) => router.invoke(method, req),
      flow: router.flow,
      stats: () => ({ relayed: router.relayed }),
      control: {
        spawn: (msg) => {
          const child = fork(script, msg.argv, { serialization: 'advanced', env: { ...process.env, ...msg.env }, stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
          children.set(msg.id, child);
          router.add(new Channel(child, (...a) => router.onFrame(...a)));
          child.on('message', (m) => {
            if (m.type !== undefined) process.send({ type: 'from', id: msg.id, msg: m });
          });
          child.on('exit', (code, signal) => process.send?.({ type: 'from', id: msg.id, msg: { type: 'exit', code, signal } }));
        },
        to: (msg) => children.get(msg.id)?.send(msg.msg),
      },
    };
  },
  async join() {
    const client = new Client();
    client.link = new Channel(process, (...a) => client.onFrame(...a));
    return client;
  },
};

await runRole(role, scenario, Number(nArg), transport);

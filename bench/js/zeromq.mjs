// Contender "zeromq.js" (npm `zeromq`, its prebuilt libzmq 4.3 inside the package): A binds a
// ROUTER socket on ipc:// and runs the JavaScript relay of router.mjs; B and C connect DEALERs.
// A message is three parts, [header (u8 kind, u32 id), topic, payload], the payload packed with
// msgpackr in standard mode (zeromq moves bytes only; msgpack is what its users pair it with).
// The relay forwards the parts as received, so payloads are not re-encoded.
//
//   node zeromq.mjs <role: a | b | c> <scenario> <n>
//
// zeromq.js allows one send in progress per socket, so each socket has a queue and a pump that
// awaits every send; a sender waits while over 8192 messages or 4 MiB are queued. The ROUTER is
// `mandatory`, so a full peer makes its send wait instead of dropping (zeromq's default).
// ZeroMQ's own zmq_proxy would relay on a native thread; the JavaScript relay is what an
// Electron main process does when it routes by topic, and what the other contenders do.
import { createRequire } from 'node:module';
import { Packr, Unpackr } from 'msgpackr';
import { runRole } from './common.mjs';
import { Router, Client } from './router.mjs';

const require = createRequire(import.meta.url);
const zmq = require('zeromq');
const [role, scenario, nArg] = process.argv.slice(2);
const MAX_MESSAGES = 8192;
const MAX_BYTES = 4 * 1024 * 1024;
const EMPTY = Buffer.alloc(0);

/** One socket's send queue: one send in progress at a time, as zeromq.js requires. */
class Pump {
  constructor(socket) {
    this.socket = socket;
    this.queue = [];
    this.bytes = 0;
    this.running = false;
    this.waiters = [];
  }

  push(parts, size) {
    this.queue.push(parts);
    this.bytes += size;
    if (!this.running) this.#run();
  }

  async #run() {
    this.running = true;
    try {
      while (this.queue.length > 0) {
        const parts = this.queue.shift();
        this.bytes -= parts[parts.length - 1].length;
        for (;;) {
          try {
            await this.socket.send(parts);
            break;
          } catch (err) {
            // A `mandatory` ROUTER reports a peer at its high-water mark as EAGAIN: wait, retry.
            // EHOSTUNREACH: the peer has gone (the orchestrator tears a run down); drop it.
            if (err?.code === 'EHOSTUNREACH') break;
            if (err?.code !== 'EAGAIN') throw err;
            await new Promise((resolve) => setTimeout(resolve, 1));
          }
        }
        if (this.waiters.length && !this.pressure()) for (const w of this.waiters.splice(0)) w();
      }
    } finally {
      this.running = false;
    }
  }

  pressure() {
    return this.queue.length > MAX_MESSAGES || this.bytes > MAX_BYTES;
  }

  drained() {
    return this.pressure() ? new Promise((resolve) => this.waiters.push(resolve)) : Promise.resolve();
  }
}

/** A peer as seen from one socket: `prefix` is [routing id] on A's ROUTER, [] on a DEALER. */
class Link {
  constructor(pump, prefix, gate) {
    this.pump = pump;
    this.prefix = prefix;
    this.gate = gate;
    this.packr = new Packr({ useRecords: false });
  }

  encode(kind, id, topic, value) {
    const header = Buffer.allocUnsafe(5);
    header[0] = kind;
    header.writeUInt32BE(id, 1);
    return { header, topic: Buffer.from(topic, 'latin1'), payload: value === undefined ? EMPTY : this.packr.pack(value) };
  }

  send(kind, id, topic, value) {
    this.forward(this.encode(kind, id, topic, value));
  }

  forward(frame, id) {
    let header = frame.header;
    if (id !== undefined) {
      header = Buffer.from(header);
      header.writeUInt32BE(id, 1);
    }
    this.pump.push([...this.prefix, header, frame.topic, frame.payload], frame.payload.length);
  }

  pressure() {
    return this.pump.pressure();
  }

  drained() {
    return this.pump.drained();
  }

  pause() {
    this.gate.pause();
  }

  resume() {
    this.gate.resume();
  }
}

/** Stops a receive loop between messages. */
class Gate {
  constructor() {
    this.wait = null;
    this.open = null;
  }
  pause() {
    if (!this.wait) this.wait = new Promise((resolve) => (this.open = resolve));
  }
  resume() {
    const open = this.open;
    this.wait = null;
    this.open = null;
    open?.();
  }
}

const unpackr = new Unpackr({ useRecords: false });
const decoder = (payload) => () => (payload.length === 0 ? undefined : unpackr.unpack(payload));

async function receive(socket, gate, onParts) {
  for await (const parts of socket) {
    onParts(parts);
    if (gate.wait) await gate.wait;
  }
}

const transport = {
  async serve() {
    const router = new Router();
    const socket = new zmq.Router({ mandatory: true, linger: 0 });
    const endpoint = `ipc://${process.env.BENCH_DIR}/a.sock`;
    await socket.bind(endpoint);
    const pump = new Pump(socket);
    const gate = new Gate();
    const links = new Map();
    receive(socket, gate, ([rid, header, topic, payload]) => {
      const key = rid.toString('latin1');
      let link = links.get(key);
      if (!link) {
        link = new Link(pump, [rid], gate);
        links.set(key, link);
        router.add(link);
      }
      router.onFrame(link, header[0], header.readUInt32BE(1), topic.toString('latin1'), { header, topic, payload }, decoder(payload));
    }).catch(() => {});
    return {
      info: { endpoint },
      emit: (topic, value) => router.emit(topic, value),
      invoke: (method, req) => router.invoke(method, req),
      flow: router.flow,
      stats: () => ({ relayed: router.relayed }),
    };
  },
  async join(info) {
    const socket = new zmq.Dealer({ linger: 0 });
    socket.connect(info.endpoint);
    const gate = new Gate();
    const client = new Client();
    client.link = new Link(new Pump(socket), [], gate);
    receive(socket, gate, ([header, topic, payload]) => {
      client.onFrame(client.link, header[0], header.readUInt32BE(1), topic.toString('latin1'), { header, topic, payload }, decoder(payload));
    }).catch(() => {});
    return client;
  },
};

await runRole(role, scenario, Number(nArg), transport);

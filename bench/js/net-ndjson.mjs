// Contender "net + NDJSON": Node `net` on a Unix socket, one JSON object per line, and a
// JavaScript relay in A: the design of LobeChat's socket IPC, and of most hand-rolled Electron
// IPC. Frames are `{"k":kind,"i":id,"t":topic,"d":payload}\n`.
//
//   node net-ndjson.mjs <role: a | b | c> <scenario> <n>
//
// JSON has no bytes: a Uint8Array payload travels as `{"$b": base64}` and is revived as a Buffer
// (what such code does by hand; JSON.stringify alone would turn it into an object of indices).
// The relay parses each line to read its kind and topic, then forwards the line's text as it
// came (re-serialising only invokes and results, whose id it rewrites). Writes are coalesced per
// JavaScript turn, and flow control is the same as net-msgpackr's, so only the codec differs.
import { once } from 'node:events';
import { runRole } from './common.mjs';
import { Client, connectUnix, serveUnix } from './router.mjs';

const [role, scenario, nArg] = process.argv.slice(2);
const FLOW_LIMIT = 4 * 1024 * 1024;

const toWire = (v) => (v instanceof Uint8Array ? { $b: Buffer.from(v.buffer, v.byteOffset, v.byteLength).toString('base64') } : v);
const fromWire = (v) => (v !== null && typeof v === 'object' && typeof v.$b === 'string' ? Buffer.from(v.$b, 'base64') : v);

class Line {
  constructor(socket, onFrame) {
    this.socket = socket;
    this.onFrame = onFrame;
    this.out = [];
    this.scheduled = false;
    this.flushBound = () => this.flush();
    this.rest = '';
    socket.setNoDelay?.(true);
    socket.setEncoding('utf8');
    socket.on('data', (chunk) => this.#onData(chunk));
  }

  #queue(line) {
    this.out.push(line);
    if (!this.scheduled) {
      this.scheduled = true;
      queueMicrotask(this.flushBound);
    }
  }

  send(kind, id, topic, value) {
    this.#queue(JSON.stringify({ k: kind, i: id, t: topic, d: toWire(value) }) + '\n');
  }

  encode(kind, id, topic, value) {
    return { line: JSON.stringify({ k: kind, i: id, t: topic, d: toWire(value) }) + '\n' };
  }

  /** `frame` is { line, msg }: the received text and its parsed object. */
  forward(frame, id) {
    if (id === undefined) this.#queue(frame.line);
    else this.#queue(JSON.stringify({ ...frame.msg, i: id }) + '\n');
  }

  flush() {
    this.scheduled = false;
    if (this.out.length === 0) return;
    const text = this.out.length === 1 ? this.out[0] : this.out.join('');
    this.out = [];
    this.socket.write(text);
  }

  #onData(chunk) {
    let start = 0;
    let nl = chunk.indexOf('\n');
    if (nl === -1) {
      this.rest += chunk;
      return;
    }
    let text = chunk;
    if (this.rest) {
      text = this.rest + chunk;
      nl += this.rest.length;
      this.rest = '';
    }
    while (nl !== -1) {
      const line = text.slice(start, nl + 1);
      const msg = JSON.parse(line);
      this.onFrame(this, msg.k, msg.i, msg.t, { line, msg }, () => fromWire(msg.d));
      start = nl + 1;
      nl = text.indexOf('\n', start);
    }
    if (start < text.length) this.rest = text.slice(start);
  }

  pressure() {
    return this.socket.writableLength > FLOW_LIMIT || this.out.length > 10_000;
  }

  drained() {
    return this.socket.writableLength > 0 ? once(this.socket, 'drain') : new Promise((r) => setImmediate(r));
  }

  pause() {
    this.socket.pause();
  }

  resume() {
    this.socket.resume();
  }
}

const transport = {
  serve: () => serveUnix((socket, onFrame) => new Line(socket, onFrame)),
  async join(info) {
    const client = new Client();
    client.link = new Line(await connectUnix(info.path), (...a) => client.onFrame(...a));
    return client;
  },
};

await runRole(role, scenario, Number(nArg), transport);

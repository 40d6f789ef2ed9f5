// Contender "net + msgpackr": the best pure-JavaScript design we could write, on Unix sockets.
//
//   node net-msgpackr.mjs <role: a | b | relay> <scenario: s1 | s2> <n> <mode: direct | relay> <codec>
//
// Frames: u32 BE length of the rest | u8 kind | u32 BE id | u8 topic length | topic | payload,
// the payload being one msgpackr value. A relay routes on the fixed header alone and forwards the
// frame bytes untouched (only the id is rewritten for invokes), as Switchboard's hub reads only
// the envelope. Every connection coalesces the frames of one JavaScript turn into one write.
// Flow control: a sender waits for 'drain' once more than FLOW_LIMIT bytes are queued on its
// socket; the relay pauses a source while a destination is over the limit.
//
// codec: 'standard' = Packr({ useRecords: false }) (plain msgpack maps, interoperable like
// Switchboard's wire); 'records' = Packr({ sequential: true }) (msgpackr's record extension, each
// shape defined once per stream: faster and smaller, but msgpackr-only and stateful per stream).
import net from 'node:net';
import { once } from 'node:events';
import { Packr, Unpackr } from 'msgpackr';
import { TOPIC, METHOD, control, send, now, maxRssKiB, emitAll, Receiver, invokeAll, percentiles } from './common.mjs';

const [role, scenario, nArg, mode = 'direct', codec = 'standard'] = process.argv.slice(2);
const N = Number(nArg);
const FLOW_LIMIT = 4 * 1024 * 1024;

const K = { event: 1, invoke: 2, result: 3, subscribe: 4, register: 5, ping: 6, pong: 7, error: 8 };
const HEADER = 10; // u32 length + u8 kind + u32 id + u8 topic length

function makeCodec() {
  return codec === 'records'
    ? { packr: new Packr({ sequential: true }), unpackr: new Unpackr({ sequential: true }) }
    : { packr: new Packr({ useRecords: false }), unpackr: new Unpackr({ useRecords: false }) };
}

/** One connection: framed output coalesced per turn, framed input parsed incrementally. */
class Conn {
  constructor(socket, onFrame) {
    this.socket = socket;
    this.onFrame = onFrame; // (conn, kind, id, topic, buf, frameStart, payloadStart, frameEnd)
    this.out = Buffer.allocUnsafe(128 * 1024);
    this.pos = 0;
    this.scheduled = false;
    this.flushBound = () => this.flush();
    this.pending = null;
    this.frames = 0;
    this.writes = 0;
    this.chunks = 0;
    const { packr, unpackr } = makeCodec();
    this.packr = packr;
    this.unpackr = unpackr;
    socket.setNoDelay?.(true);
    socket.on('data', (chunk) => this.#onData(chunk));
  }

  ensure(n) {
    if (this.pos + n <= this.out.length) return;
    const grown = Buffer.allocUnsafe(Math.max(this.out.length * 2, this.pos + n));
    this.out.copy(grown, 0, 0, this.pos);
    this.out = grown;
  }

  #schedule() {
    if (!this.scheduled) {
      this.scheduled = true;
      queueMicrotask(this.flushBound);
    }
  }

  /** Queues one frame; `value` is packed with msgpackr (undefined: empty payload). */
  send(kind, id, topic, value) {
    const payload = value === undefined ? null : this.packr.pack(value);
    const tlen = topic.length; // topics here are ASCII
    const plen = payload ? payload.length : 0;
    this.ensure(HEADER + tlen + plen);
    const o = this.out;
    const at = this.pos;
    o.writeUInt32BE(HEADER - 4 + tlen + plen, at);
    o[at + 4] = kind;
    o.writeUInt32BE(id, at + 5);
    o[at + 9] = tlen;
    o.latin1Write(topic, at + HEADER, tlen);
    if (payload) payload.copy(o, at + HEADER + tlen);
    this.pos = at + HEADER + tlen + plen;
    this.frames++;
    this.#schedule();
  }

  /** Queues a received frame's bytes as they are, optionally with a new id (relay). */
  forward(buf, start, end, id) {
    const len = end - start;
    this.ensure(len);
    buf.copy(this.out, this.pos, start, end);
    if (id !== undefined) this.out.writeUInt32BE(id, this.pos + 5);
    this.pos += len;
    this.frames++;
    this.#schedule();
  }

  flush() {
    this.scheduled = false;
    if (this.pos === 0) return;
    const chunk = this.out.subarray(0, this.pos);
    // The socket keeps `chunk` until written: carry on after it in the same arena, or start anew.
    if (this.out.length - this.pos >= 16 * 1024) this.out = this.out.subarray(this.pos);
    else this.out = Buffer.allocUnsafe(128 * 1024);
    this.pos = 0;
    this.writes++;
    this.socket.write(chunk);
  }

  #onData(chunk) {
    this.chunks++;
    let buf = chunk;
    if (this.pending) {
      buf = Buffer.concat([this.pending, chunk]);
      this.pending = null;
    }
    let at = 0;
    const size = buf.length;
    while (size - at >= 4) {
      const len = buf.readUInt32BE(at);
      const end = at + 4 + len;
      if (end > size) break;
      const kind = buf[at + 4];
      const id = buf.readUInt32BE(at + 5);
      const tlen = buf[at + 9];
      const topic = buf.latin1Slice(at + HEADER, at + HEADER + tlen);
      this.onFrame(this, kind, id, topic, buf, at, at + HEADER + tlen, end);
      at = end;
    }
    if (at < size) this.pending = buf.subarray(at);
  }

  decode(buf, start, end) {
    return start === end ? undefined : this.unpackr.unpack(buf, { start, end });
  }
}

function connect(path) {
  return new Promise((resolve, reject) => {
    const s = net.createConnection(path, () => resolve(s));
    s.once('error', reject);
  });
}

function flowControl(conn) {
  return () => (conn.socket.writableLength > FLOW_LIMIT ? once(conn.socket, 'drain') : null);
}

// --- Relay: routes on the header, never decodes a payload ------------------------------------

function runRelay() {
  const subscribers = new Map(); // topic -> Set<Conn>
  const handlers = new Map(); // method -> Conn
  const calls = new Map(); // relay id -> { conn, id }
  let nextId = 1;
  const paused = new Set();
  const onFrame = (from, kind, id, topic, buf, start, payloadStart, end) => {
    switch (kind) {
      case K.event: {
        const subs = subscribers.get(topic);
        if (subs) for (const to of subs) to.forward(buf, start, end);
        break;
      }
      case K.invoke: {
        const to = handlers.get(topic);
        if (!to) {
          from.send(K.error, id, topic, 'no handler');
          break;
        }
        const rid = nextId++;
        calls.set(rid, { conn: from, id });
        to.forward(buf, start, end, rid);
        break;
      }
      case K.result:
      case K.error: {
        const call = calls.get(id);
        if (!call) break;
        calls.delete(id);
        call.conn.forward(buf, start, end, call.id);
        break;
      }
      case K.subscribe: {
        let set = subscribers.get(topic);
        if (!set) subscribers.set(topic, (set = new Set()));
        set.add(from);
        break;
      }
      case K.register:
        handlers.set(topic, from);
        break;
      case K.ping:
        from.send(K.pong, id, '', undefined);
        break;
    }
  };
  const conns = new Set();
  const server = net.createServer((socket) => {
    const conn = new Conn(socket, onFrame);
    conns.add(conn);
    // Flow control: a destination over the limit pauses every source until it drains.
    const origFlush = conn.flush.bind(conn);
    conn.flush = () => {
      origFlush();
      if (socket.writableLength > FLOW_LIMIT && !conn.draining) {
        conn.draining = true;
        for (const c of conns) {
          if (c !== conn && !paused.has(c)) {
            paused.add(c);
            c.socket.pause();
          }
        }
        socket.once('drain', () => {
          conn.draining = false;
          for (const c of paused) c.socket.resume();
          paused.clear();
        });
      }
    };
    socket.on('error', () => {});
    socket.on('close', () => {
      conns.delete(conn);
      for (const set of subscribers.values()) set.delete(conn);
    });
  });
  const path = `${process.env.BENCH_DIR}/relay.sock`;
  server.listen(path, () => send({ type: 'ready', path }));
  control({
    report: () =>
      send({
        type: 'report',
        maxRSS: maxRssKiB(),
        framesPerWrite: [...conns].map((c) => (c.writes ? c.frames / c.writes : 0)),
      }),
  });
}

// --- B: receives events / serves invokes -------------------------------------------------------

async function runB() {
  let onDone;
  const receiver = new Receiver(N, (rep) => onDone(rep));
  const onFrame = (conn, kind, id, topic, buf, start, payloadStart, end) => {
    if (kind === K.event) {
      if (topic === TOPIC) receiver.receive(conn.decode(buf, payloadStart, end));
    } else if (kind === K.invoke) {
      if (topic === METHOD) {
        const req = conn.decode(buf, payloadStart, end);
        conn.send(K.result, id, '', { n: req.n + 1 });
      } else conn.send(K.error, id, topic, 'no handler');
    } else if (kind === K.pong) {
      conn.onPong?.();
    }
  };
  let conn;
  if (mode === 'direct') {
    const path = `${process.env.BENCH_DIR}/b.sock`;
    const server = net.createServer((socket) => {
      conn = new Conn(socket, onFrame);
      onDone = (rep) => send({ type: 'done', ...rep, maxRSS: maxRssKiB(), chunksIn: conn.chunks });
    });
    await new Promise((r) => server.listen(path, r));
    send({ type: 'ready', path });
  } else {
    conn = new Conn(await connect(process.env.BENCH_RELAY), onFrame);
    onDone = (rep) => send({ type: 'done', ...rep, maxRSS: maxRssKiB(), chunksIn: conn.chunks });
    conn.send(scenario === 's1' ? K.subscribe : K.register, 0, scenario === 's1' ? TOPIC : METHOD, undefined);
    // The relay handles one connection's frames in order: its pong proves the subscription.
    await new Promise((resolve) => {
      conn.onPong = resolve;
      conn.send(K.ping, 0, '', undefined);
    });
    send({ type: 'ready' });
  }
  control({ report: () => send({ type: 'report', maxRSS: maxRssKiB(), ...receiver.report() }) });
}

// --- A: emits events / invokes ------------------------------------------------------------------

async function runA() {
  const pendingCalls = new Map();
  let nextId = 1;
  const conn = new Conn(await connect(process.env.BENCH_PEER), (c, kind, id, topic, buf, start, payloadStart, end) => {
    if (kind === K.result || kind === K.error) {
      const p = pendingCalls.get(id);
      if (!p) return;
      pendingCalls.delete(id);
      if (kind === K.result) p.resolve(c.decode(buf, payloadStart, end));
      else p.reject(new Error(String(c.decode(buf, payloadStart, end))));
    }
  });
  const invoke = (method, req) =>
    new Promise((resolve, reject) => {
      const id = nextId++;
      pendingCalls.set(id, { resolve, reject });
      conn.send(K.invoke, id, method, req);
    });
  send({ type: 'ready' });
  control({
    go: async (msg) => {
      if (scenario === 's1') {
        const t0 = now();
        const tEnd = await emitAll(N, (ev) => conn.send(K.event, 0, TOPIC, ev), flowControl(conn));
        send({ type: 'sent', t0: String(t0), tEnd: String(tEnd) });
      } else {
        const { us, wrong, totalUs } = await invokeAll(N, msg.warmup, (i) => invoke(METHOD, { n: i }));
        send({ type: 'done', ...percentiles(us), wrong, totalUs, maxRSS: maxRssKiB() });
      }
    },
    report: () =>
      send({ type: 'report', maxRSS: maxRssKiB(), framesPerWrite: conn.writes ? conn.frames / conn.writes : 0 }),
  });
}

if (role === 'relay') runRelay();
else if (role === 'b') await runB();
else if (role === 'a') await runA();
else throw new Error(`unknown role ${role}`);

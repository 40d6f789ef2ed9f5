// Contender "net + msgpackr": the best pure-JavaScript design we could write, on Unix sockets.
//
//   node net-msgpackr.mjs <role: a | b | c> <scenario> <n> <codec: standard | records>
//
// A is the server and runs the JavaScript relay of router.mjs; B and C connect to it.
// Frames: u32 BE length of the rest | u8 kind | u32 BE id | u8 topic length | topic | payload,
// the payload being one msgpackr value. A relay routes on the fixed header alone and forwards the
// frame bytes untouched (only the id is rewritten for invokes), as Switchboard's hub reads only
// the envelope. Every connection coalesces the frames of one JavaScript turn into one write.
// Flow control: a sender waits for 'drain' once more than FLOW_LIMIT bytes are queued on its
// socket; the relay pauses its sources while a destination is over the limit.
//
// codec: 'standard' = Packr({ useRecords: false }) (plain msgpack maps, interoperable like
// Switchboard's wire); 'records' = Packr({ sequential: true }) (msgpackr's record extension, each
// shape defined once per stream: faster and smaller, but msgpackr-only and stateful per stream).
import { once } from 'node:events';
import { Packr, Unpackr } from 'msgpackr';
import { runRole } from './common.mjs';
import { Client, connectUnix, serveUnix } from './router.mjs';

const [role, scenario, nArg, codec = 'standard'] = process.argv.slice(2);
const FLOW_LIMIT = 4 * 1024 * 1024;

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
    this.onFrame = onFrame; // (conn, kind, id, topic, frame, decode)
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

  /** One frame's bytes, for fan-out (standard codec only: records state is per connection). */
  get encode() {
    return codec === 'records' ? undefined : this.encodeFrame;
  }

  encodeFrame(kind, id, topic, value) {
    const payload = value === undefined ? null : this.packr.pack(value);
    const tlen = topic.length;
    const plen = payload ? payload.length : 0;
    const f = Buffer.allocUnsafe(HEADER + tlen + plen);
    f.writeUInt32BE(HEADER - 4 + tlen + plen, 0);
    f[4] = kind;
    f.writeUInt32BE(id, 5);
    f[9] = tlen;
    f.latin1Write(topic, HEADER, tlen);
    if (payload) payload.copy(f, HEADER + tlen);
    return f;
  }

  /** Queues a received frame's bytes as they are, optionally with a new id (relay). */
  forward(frame, id) {
    const len = frame.length;
    this.ensure(len);
    frame.copy(this.out, this.pos);
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
      const payloadStart = at + HEADER + tlen;
      this.onFrame(this, kind, id, topic, buf.subarray(at, end), () => this.decode(buf, payloadStart, end));
      at = end;
    }
    if (at < size) this.pending = buf.subarray(at);
  }

  pressure() {
    return this.socket.writableLength + this.pos > FLOW_LIMIT;
  }

  drained() {
    return this.socket.writableLength > 0 ? once(this.socket, 'drain') : Promise.resolve();
  }

  pause() {
    this.socket.pause();
  }

  resume() {
    this.socket.resume();
  }

  decode(buf, start, end) {
    return start === end ? undefined : this.unpackr.unpack(buf, { start, end });
  }
}

const transport = {
  serve: () => serveUnix((socket, onFrame) => new Conn(socket, onFrame), (router) => ({ framesPerWrite: [...router.links].map((c) => (c.writes ? c.frames / c.writes : 0)) })),
  async join(info) {
    const client = new Client();
    client.link = new Conn(await connectUnix(info.path), (...a) => client.onFrame(...a));
    client.stats = () => ({ framesPerWrite: client.link.writes ? client.link.frames / client.link.writes : 0 });
    return client;
  },
};

await runRole(role, scenario, Number(nArg), transport);

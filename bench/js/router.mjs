// The JavaScript relay every non-Switchboard contender runs in process A: what an Electron main
// process does today when it sits between its children (LobeChat's socket IPC, a fork parent).
// It routes on each frame's kind, id and topic and forwards the frame as received, decoding a
// payload only when the frame is for A itself. A's own emits and invokes go through it too, so
// A is both an endpoint (S1–S4, S6) and a relay (S5).
//
// A link (one per peer) is the transport's: send(kind, id, topic, value) encodes and queues;
// forward(frame, id?) queues a received frame, with a new id for invokes; pressure() says the
// peer's queue is over the flow-control limit; drained() resolves when it is not; pause() and
// resume() stop and restart reading from the peer (a no-op where the transport cannot).
import net from 'node:net';

export const K = { event: 1, invoke: 2, result: 3, subscribe: 4, register: 5, ping: 6, pong: 7, error: 8 };

export class Router {
  constructor() {
    this.links = new Set();
    this.subscribers = new Map(); // topic -> Set<link>
    this.handlers = new Map(); // method -> link
    this.calls = new Map(); // relay id -> { link, id }
    this.pending = new Map(); // id -> { resolve, reject }: A's own invokes
    this.nextId = 1;
    this.paused = new Set();
    this.relayed = 0;
    this.flow = () => {
      for (const l of this.links) if (l.pressure()) return l.drained();
      return null;
    };
  }

  add(link) {
    this.links.add(link);
  }

  remove(link) {
    this.links.delete(link);
    for (const set of this.subscribers.values()) set.delete(link);
  }

  /** One received frame; `decode()` yields its payload. */
  onFrame(from, kind, id, topic, frame, decode) {
    switch (kind) {
      case K.event: {
        const subs = this.subscribers.get(topic);
        if (!subs) break;
        for (const to of subs) {
          if (to === from) continue;
          to.forward(frame);
          this.relayed++;
          if (to.pressure()) this.#hold(to);
        }
        break;
      }
      case K.invoke: {
        const to = this.handlers.get(topic);
        if (!to) {
          from.send(K.error, id, topic, 'no handler');
          break;
        }
        const rid = this.nextId++;
        this.calls.set(rid, { link: from, id });
        to.forward(frame, rid);
        break;
      }
      case K.result:
      case K.error: {
        const mine = this.pending.get(id);
        if (mine) {
          this.pending.delete(id);
          if (kind === K.result) mine.resolve(decode());
          else mine.reject(new Error(String(decode())));
          break;
        }
        const call = this.calls.get(id);
        if (!call) break;
        this.calls.delete(id);
        call.link.forward(frame, call.id);
        break;
      }
      case K.subscribe: {
        let set = this.subscribers.get(topic);
        if (!set) this.subscribers.set(topic, (set = new Set()));
        set.add(from);
        break;
      }
      case K.register:
        this.handlers.set(topic, from);
        break;
      case K.ping:
        from.send(K.pong, id, '', undefined);
        break;
    }
  }

  /** A destination over the limit pauses every source until it drains. */
  #hold(to) {
    if (to.holding) return;
    to.holding = true;
    for (const l of this.links) {
      if (l !== to && !this.paused.has(l)) {
        this.paused.add(l);
        l.pause();
      }
    }
    to.drained().then(() => {
      to.holding = false;
      for (const l of this.paused) l.resume();
      this.paused.clear();
    });
  }

  /** A's own emit: encoded once and forwarded to every subscriber where the link can (encode()). */
  emit(topic, value) {
    const subs = this.subscribers.get(topic);
    if (!subs) return;
    if (subs.size > 1) {
      const [first] = subs;
      if (first.encode) {
        const frame = first.encode(K.event, 0, topic, value);
        for (const to of subs) to.forward(frame);
        return;
      }
    }
    for (const to of subs) to.send(K.event, 0, topic, value);
  }

  /** A's own invoke of a handler a client registered. */
  invoke(method, req) {
    return new Promise((resolve, reject) => {
      const to = this.handlers.get(method);
      if (!to) {
        reject(new Error(`no handler for ${method}`));
        return;
      }
      const id = this.nextId++;
      this.pending.set(id, { resolve, reject });
      to.send(K.invoke, id, method, req);
    });
  }
}

/**
 * The client side of the same protocol, over one link to A: subscribe and register are fenced
 * with a ping (A handles one link's frames in order, so its pong proves them in place).
 */
export class Client {
  constructor() {
    this.link = null;
    this.listeners = new Map();
    this.handlers = new Map();
    this.pongs = [];
    this.flow = () => (this.link.pressure() ? this.link.drained() : null);
  }

  onFrame(from, kind, id, topic, frame, decode) {
    if (kind === K.event) {
      this.listeners.get(topic)?.(decode());
    } else if (kind === K.invoke) {
      const fn = this.handlers.get(topic);
      if (fn) from.send(K.result, id, '', fn(decode()));
      else from.send(K.error, id, topic, 'no handler');
    } else if (kind === K.pong) {
      this.pongs.shift()?.();
    }
  }

  #fence() {
    return new Promise((resolve) => {
      this.pongs.push(resolve);
      this.link.send(K.ping, 0, '', undefined);
    });
  }

  on(topic, fn) {
    this.listeners.set(topic, fn);
    this.link.send(K.subscribe, 0, topic, undefined);
    return this.#fence();
  }

  handle(method, fn) {
    this.handlers.set(method, fn);
    this.link.send(K.register, 0, method, undefined);
    return this.#fence();
  }

  emit(topic, value) {
    this.link.send(K.event, 0, topic, value);
  }
}

/** A connected Unix socket at `path`. */
export function connectUnix(path) {
  return new Promise((resolve, reject) => {
    const s = net.createConnection(path, () => resolve(s));
    s.once('error', reject);
  });
}

/**
 * A transport's serve(): a Router behind a Unix socket server in BENCH_DIR, each connection
 * wrapped by `makeLink(socket, onFrame)` (the contender's framing). `stats(router)` adds the
 * contender's own figures.
 */
export async function serveUnix(makeLink, stats = () => ({})) {
  const router = new Router();
  const onFrame = (...a) => router.onFrame(...a);
  const server = net.createServer((socket) => {
    const link = makeLink(socket, onFrame);
    router.add(link);
    socket.on('error', () => {});
    socket.on('close', () => router.remove(link));
  });
  const path = `${process.env.BENCH_DIR}/a.sock`;
  await new Promise((resolve) => server.listen(path, resolve));
  return {
    info: { path },
    emit: (topic, value) => router.emit(topic, value),
    invoke: (method, req) => router.invoke(method, req),
    flow: router.flow,
    stats: () => ({ relayed: router.relayed, ...stats(router) }),
  };
}

// GET /api/events: the bus's job events (and the hub's connection state) as Server-Sent Events.
import { bus, errorResponse, onShutdown } from '@/lib/bus';

export const runtime = 'nodejs';
export const dynamic = 'force-dynamic';

export function GET(request) {
  let b;
  try {
    b = bus();
  } catch (err) {
    return errorResponse(err);
  }
  const encoder = new TextEncoder();
  const stops = [];
  const stop = () => stops.splice(0).forEach((off) => off());
  const stream = new ReadableStream({
    start(controller) {
      const send = (event, data) => {
        try {
          controller.enqueue(encoder.encode(`event: ${event}\ndata: ${JSON.stringify(data)}\n\n`));
        } catch {
          stop(); // the browser went away
        }
      };
      // Subscribed before the first byte goes out: whatever this process emits after the browser
      // has seen 'hub' reaches the hub after this subscription (one sender's order is kept).
      stops.push(b.on('job:*', (data, ctx) => send('job', { topic: ctx.topic, ...data })));
      stops.push(b.on('connection', (ev) => send('hub', { state: ev.state })));
      send('hub', { state: b.stats().state });
      const end = () => {
        stop();
        try {
          controller.close();
        } catch {
          // already closed
        }
      };
      // The browser went away, or the server is stopping (it waits for open responses).
      request.signal.addEventListener('abort', end);
      stops.push(onShutdown(end));
    },
    cancel: stop,
  });
  // `connection: close`: the socket ends with the stream, so that a stopping server (which waits
  // for its open connections) is not held by it afterwards; an EventSource reconnects anyway.
  return new Response(stream, {
    headers: { 'content-type': 'text/event-stream', 'cache-control': 'no-cache, no-transform', connection: 'close' },
  });
}

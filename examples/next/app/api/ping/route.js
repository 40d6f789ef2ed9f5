// GET /api/ping: a route that does not use the bus (the baseline of the latency figures).
export const runtime = 'nodejs';
export const dynamic = 'force-dynamic';

export function GET() {
  return Response.json({ pid: process.pid, now: Date.now() });
}

// GET /api/divide?a=1&b=2: a route handler that invokes a handler in the hub's process.
import { bus, errorResponse } from '@/lib/bus';

export const runtime = 'nodejs';

export async function GET(request) {
  const params = new URL(request.url).searchParams;
  const a = Number(params.get('a'));
  const b = Number(params.get('b'));
  try {
    const result = await bus().invoke('math:divide', { a, b });
    return Response.json({ a, b, result });
  } catch (err) {
    // A RemoteError keeps the hub handler's class, code and message (422); the hub away: 503.
    return errorResponse(err);
  }
}

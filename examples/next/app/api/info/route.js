// GET /api/info: who answers (this Next.js server) and who it reached (the hub's process).
import { bus, errorResponse } from '@/lib/bus';

export const runtime = 'nodejs';

export async function GET() {
  try {
    const b = bus();
    const hub = await b.invoke('app:info');
    return Response.json({ next: { pid: process.pid, role: b.role, name: b.name }, hub });
  } catch (err) {
    return errorResponse(err);
  }
}

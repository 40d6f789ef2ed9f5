'use server';
// A server action that emits an event: the hub's process runs the job and emits its progress.
import { bus } from '@/lib/bus';

export async function startJob(steps) {
  const n = Math.max(1, Math.min(100, Math.trunc(Number(steps)) || 5));
  const id = crypto.randomUUID().slice(0, 8);
  bus().emit('job:start', { id, steps: n });
  return { id, steps: n };
}

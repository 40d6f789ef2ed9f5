// Where are we running? DESIGN.md, "Who joins, and how".
import { isMainThread } from 'node:worker_threads';

export type ProcessKind = 'main' | 'preload' | 'renderer' | 'utility' | 'worker' | 'node';

/**
 * 'main' (Electron main), 'preload' (Node.js inside a renderer), 'renderer' (a page without
 * Node.js), 'utility' (Electron utility process), 'worker' (a worker thread), else 'node'.
 */
export function detectProcess(): ProcessKind {
  const proc = (globalThis as { process?: { type?: string; versions?: Record<string, string> } })
    .process;
  if (!proc || !proc.versions || !proc.versions.node) return 'renderer';
  switch (proc.type) {
    case 'browser':
      return 'main';
    case 'renderer':
      return 'preload';
    case 'utility':
      return 'utility';
    default:
      break;
  }
  if (!isMainThread) return 'worker';
  return 'node';
}

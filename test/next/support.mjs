// Shared by test/next/*.test.mjs: the prepared app (test/next/run.mjs), HTTP helpers, and the
// cleanup of every process a test starts.
import { existsSync } from 'node:fs';
import { join } from 'node:path';

/** The app test/next/run.mjs prepared, or a clear failure when a file is run on its own. */
export function appDir() {
  const dir = process.env.SWITCHBOARD_NEXT_APP;
  if (!dir || !existsSync(join(dir, '.next', 'BUILD_ID'))) {
    throw new Error(
      'SWITCHBOARD_NEXT_APP does not name a built Next.js app: run these tests through `node test/next/run.mjs` ' +
        '(it installs and builds examples/next once), or prepare one with examples/next/prepare.mjs --build',
    );
  }
  return dir;
}

/** GET `url` and parse JSON: { status, body }. */
export async function getJson(url) {
  const res = await fetch(url, { signal: AbortSignal.timeout(30_000) });
  const text = await res.text();
  let body;
  try {
    body = JSON.parse(text);
  } catch {
    body = text;
  }
  return { status: res.status, body };
}

/** Repeats `fn` every `everyMs` until it returns something truthy, failing after `ms` with `what`. */
export async function until(ms, what, fn, everyMs = 100) {
  const end = Date.now() + ms;
  let last;
  for (;;) {
    try {
      last = await fn();
      if (last) return last;
    } catch (err) {
      last = err;
    }
    if (Date.now() > end) throw new Error(`${what}: not within ${ms} ms (last: ${last instanceof Error ? last.message : JSON.stringify(last)})`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

/** Kills a process group (a detached `next` and what it forked), ignoring one already gone. */
export function killGroup(pid, signal = 'SIGKILL') {
  if (!pid) return;
  try {
    process.kill(-pid, signal);
  } catch {
    try {
      process.kill(pid, signal);
    } catch {
      // gone
    }
  }
}

/** Whether a process still runs. */
export function alive(pid) {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** The environment of a browser: without the ASan runtime some lanes preload into node. */
export function browserEnv() {
  const { LD_PRELOAD: _, ASAN_OPTIONS: __, ...env } = process.env;
  return env;
}

export const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';

// withSwitchboard() lists 'switchboard-ipc' in serverExternalPackages: the server loads it from
// node_modules with Node.js's require, next to its native addon, instead of bundling it.
import { withSwitchboard } from 'switchboard-ipc/next';

export default withSwitchboard({
  // The tests build and run `next dev` in one folder: each gets its own output folder.
  distDir: process.env.NEXT_DIST_DIR || '.next',
  // This app is its own root (the repository around it has a lockfile of its own).
  outputFileTracingRoot: import.meta.dirname,
});

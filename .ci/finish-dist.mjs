// After `tsc` has compiled lib/ twice (dist/esm, dist/cjs): mark each tree's module format and
// copy the CommonJS native loader, which both formats import.
import { copyFileSync, mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
for (const [dir, type] of [
  ['dist/esm', 'module'],
  ['dist/cjs', 'commonjs'],
]) {
  mkdirSync(join(root, dir), { recursive: true });
  writeFileSync(join(root, dir, 'package.json'), JSON.stringify({ type }) + '\n');
  copyFileSync(join(root, 'lib/native-loader.cjs'), join(root, dir, 'native-loader.cjs'));
}

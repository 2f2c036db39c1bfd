// After `tsc`, puts the generated native loader and the addon binary beside the compiled sources
// in dist/, where the package loads them from.
import { copyFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';

const from = 'ts';
const to = 'dist';
const copied = [];
for (const name of readdirSync(from)) {
  if (name === 'native.js' || name === 'native.d.ts' || name.endsWith('.node')) {
    copyFileSync(join(from, name), join(to, name));
    copied.push(name);
  }
}
if (!copied.includes('native.js') || !copied.some((n) => n.endsWith('.node'))) {
  console.error(`copy-native: expected native.js and a .node binary in ${from}/ (run npm run build:native); found ${copied.join(', ') || 'nothing'}`);
  process.exit(1);
}

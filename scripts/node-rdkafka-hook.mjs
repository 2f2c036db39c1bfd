// Loaded with `--import` (through NODE_OPTIONS) when scripts/test.sh runs the suites on a Node
// other than the one node_modules was installed with: node-rdkafka is a NAN addon built for one
// Node ABI, so a resolution that lands in the clone's node_modules/node-rdkafka (the Node 20
// build, $KDR_RDKAFKA_REPLACE) is redone from the build scripts/node-versions.sh made for this
// Node ($KDR_RDKAFKA_DIR). module.registerHooks covers both import and require; NODE_OPTIONS
// carries this file into every child process (ava workers, the CLI under test).
// Other packages, and a node-rdkafka installed anywhere else, resolve as usual.
import { realpathSync } from 'node:fs';
import { registerHooks } from 'node:module';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';

const dir = process.env.KDR_RDKAFKA_DIR;
const replace = process.env.KDR_RDKAFKA_REPLACE;
if (!dir || !replace) {
  throw new Error('node-rdkafka-hook: KDR_RDKAFKA_DIR and KDR_RDKAFKA_REPLACE must be set');
}
// Resolved URLs are real paths (no symlinks), so compare with the real path.
const from = pathToFileURL(realpathSync(replace)).href + '/';
const to = pathToFileURL(join(dir, 'node_modules', 'node-rdkafka')).href + '/';

registerHooks({
  resolve(specifier, context, nextResolve) {
    const result = nextResolve(specifier, context);
    return result.url.startsWith(from) ? { ...result, url: to + result.url.slice(from.length) } : result;
  },
});

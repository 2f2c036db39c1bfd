/** Where scripts/emulators.sh installs the Azure emulator, free ports, and waiting for emulators. */
import type { ChildProcess } from 'node:child_process';
import { createServer } from 'node:net';
import { homedir } from 'node:os';
import { join } from 'node:path';

/** KDR_EMULATORS_DIR, else the cache folder scripts/emulators.sh fills by default. */
export function emulatorsDir(): string {
  return process.env.KDR_EMULATORS_DIR ?? join(homedir(), '.cache', 'kafka-delta-rust', 'emulators');
}

/** A TCP port nothing listens on now, for an emulator to take. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      const port = typeof address === 'object' && address ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}

/** Polls `url` until it answers at all (any status: the emulators reject unsigned requests). */
export async function waitForHttp(url: string, child: ChildProcess, what: string, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      await fetch(url);
      return;
    } catch {
      // not listening yet
    }
    if (child.exitCode !== null || child.signalCode !== null || Date.now() > deadline) {
      child.kill();
      throw new Error(`${what} did not start at ${url} (installed by scripts/emulators.sh?)`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
}

/**
 * A local GCS endpoint for the tests: fake-gcs-server (installed by scripts/emulators.sh) behind
 * gcs-xml-proxy.ts, which supplies the XML-API writes, listings and preconditions object_store
 * needs and fake-gcs-server lacks.
 */
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { StorageOptions } from './delta.js';
import { emulatorsDir, freePort, waitForHttp } from './emulators.js';

const PROXY = fileURLToPath(new URL('./gcs-xml-proxy.ts', import.meta.url));
const ROOT = fileURLToPath(new URL('../..', import.meta.url));

/** A running GCS endpoint and the delta-rs storage options that reach it. */
export interface LocalGcs {
  readonly endpoint: string;
  readonly storageOptions: StorageOptions;
  createBucket(name: string): Promise<void>;
  tableUri(bucket: string, path: string): string;
  stop(): void;
}

/** Starts fake-gcs-server (in memory) and its proxy on free ports and waits until both answer. */
export async function startLocalGcs(): Promise<LocalGcs> {
  const binary = join(emulatorsDir(), 'bin', 'fake-gcs-server');
  if (!existsSync(binary)) throw new Error(`${binary} is missing: run scripts/emulators.sh`);
  const serverPort = await freePort();
  let proxyPort = await freePort();
  while (proxyPort === serverPort) proxyPort = await freePort();
  const server = spawn(
    binary,
    // -public-host without a port matches 127.0.0.1:<any port>, which turns on the XML routes.
    ['-scheme', 'http', '-host', '127.0.0.1', '-port', String(serverPort), '-public-host', '127.0.0.1',
      '-backend', 'memory', '-log-level', 'error'],
    { stdio: 'ignore' },
  );
  const upstream = `http://127.0.0.1:${serverPort}`;
  // The proxy exits when its stdin closes, so it never outlives the test process. Run from the
  // repository root, where `--import tsx` resolves.
  const proxy = spawn(process.execPath, ['--import', 'tsx', PROXY, String(proxyPort), upstream], {
    cwd: ROOT,
    stdio: ['pipe', 'ignore', 'inherit'],
  });
  const stop = () => {
    proxy.kill();
    server.kill();
  };
  const endpoint = `http://127.0.0.1:${proxyPort}`;
  try {
    await waitForHttp(`${upstream}/_internal/healthcheck`, server, 'fake-gcs-server');
    await waitForHttp(endpoint, proxy, 'gcs-xml-proxy');
  } catch (e) {
    stop();
    throw e;
  }
  const storageOptions: StorageOptions = {
    // object_store takes the endpoint from a service-account key; disable_oauth leaves requests
    // unsigned (google_skip_signature does not cover PUTs: they would ask the metadata server).
    google_service_account_key: JSON.stringify({
      gcs_base_url: endpoint,
      disable_oauth: true,
      client_email: '',
      private_key: '',
      private_key_id: '',
    }),
  };
  return {
    endpoint,
    storageOptions,
    async createBucket(name: string) {
      const r = await fetch(`${upstream}/storage/v1/b?project=test`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ name }),
      });
      if (!r.ok) throw new Error(`creating bucket ${name}: ${r.status} ${await r.text()}`);
    },
    tableUri(bucket: string, path: string) {
      return `gs://${bucket}/${path}`;
    },
    stop,
  };
}

/** A local Azure Blob endpoint for the tests: Azurite's blob service (installed by scripts/emulators.sh). */
import { spawn } from 'node:child_process';
import { createHmac } from 'node:crypto';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import type { StorageOptions } from './delta.js';
import { emulatorsDir, freePort, waitForHttp } from './emulators.js';

// Azurite's fixed development account (public, documented by Microsoft).
const ACCOUNT = 'devstoreaccount1';
const KEY = 'Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==';

/** A running Azure Blob endpoint and the delta-rs storage options that reach it. */
export interface LocalAzure {
  /** The account's blob endpoint (path-style: http://127.0.0.1:PORT/devstoreaccount1). */
  readonly endpoint: string;
  readonly storageOptions: StorageOptions;
  createContainer(name: string): Promise<void>;
  tableUri(container: string, path: string): string;
  stop(): void;
}

/** Starts Azurite's blob service (in memory) on a free port and waits until it answers. */
export async function startLocalAzure(): Promise<LocalAzure> {
  const main = join(emulatorsDir(), 'azurite', 'node_modules', 'azurite', 'dist', 'src', 'blob', 'main.js');
  if (!existsSync(main)) throw new Error(`${main} is missing: run scripts/emulators.sh`);
  const port = await freePort();
  const child = spawn(
    process.execPath,
    [main, '--silent', '--disableTelemetry', '--inMemoryPersistence', '--blobHost', '127.0.0.1',
      '--blobPort', String(port), '--skipApiVersionCheck', '--loose'],
    // In memory: nothing is written to disk, and --location must then be left out.
    { stdio: 'ignore' },
  );
  const service = `http://127.0.0.1:${port}`;
  await waitForHttp(service, child, 'Azurite');
  const endpoint = `${service}/${ACCOUNT}`;
  const storageOptions: StorageOptions = {
    // Not azure_storage_use_emulator: that mode takes its URL only from the AZURITE_BLOB_STORAGE_URL
    // environment variable (default port 10000), which storage options cannot reach.
    azure_storage_account_name: ACCOUNT,
    azure_storage_account_key: KEY,
    azure_storage_endpoint: endpoint,
    azure_allow_http: 'true',
  };
  return {
    endpoint,
    storageOptions,
    async createContainer(name: string) {
      // Create Container with Shared Key auth, signed by hand to spare the tests an Azure SDK.
      const url = new URL(`${endpoint}/${name}?restype=container`);
      const headers = { 'x-ms-date': new Date().toUTCString(), 'x-ms-version': '2021-08-06' };
      const stringToSign = [
        'PUT', '', '', '', '', '', '', '', '', '', '', '',
        `x-ms-date:${headers['x-ms-date']}`,
        `x-ms-version:${headers['x-ms-version']}`,
        `/${ACCOUNT}${url.pathname}\nrestype:container`,
      ].join('\n');
      const signature = createHmac('sha256', Buffer.from(KEY, 'base64')).update(stringToSign, 'utf8').digest('base64');
      const r = await fetch(url, { method: 'PUT', headers: { ...headers, authorization: `SharedKey ${ACCOUNT}:${signature}` } });
      if (r.status !== 201) throw new Error(`creating container ${name}: ${r.status} ${await r.text()}`);
    },
    tableUri(container: string, path: string) {
      return `az://${container}/${path}`;
    },
    stop() {
      child.kill();
    },
  };
}

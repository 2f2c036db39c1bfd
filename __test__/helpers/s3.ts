/** A local S3 endpoint for the tests (moto's server, installed by scripts/system-deps.sh). */
import { execFileSync, spawn } from 'node:child_process';
import type { StorageOptions } from './delta.js';
import { freePort } from './emulators.js';

/** A running S3 endpoint and the delta-rs storage options that reach it. */
export interface LocalS3 {
  readonly endpoint: string;
  readonly storageOptions: StorageOptions;
  createBucket(name: string): void;
  stop(): void;
}

/** Starts moto's S3 server on a free port and waits until it answers. */
export async function startLocalS3(): Promise<LocalS3> {
  const port = await freePort();
  const child = spawn('python3', ['-m', 'moto.server', '-H', '127.0.0.1', '-p', String(port)], { stdio: 'ignore' });
  const endpoint = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + 30_000;
  for (;;) {
    try {
      if ((await fetch(`${endpoint}/moto-api/`)).status < 500) break;
    } catch {
      // not listening yet
    }
    if (child.exitCode !== null || Date.now() > deadline) {
      child.kill();
      throw new Error(`moto's S3 server did not start on port ${port} (is "moto[server]" installed?)`);
    }
    await new Promise((r) => setTimeout(r, 200));
  }
  const storageOptions: StorageOptions = {
    AWS_ENDPOINT_URL: endpoint,
    AWS_ACCESS_KEY_ID: 'test',
    AWS_SECRET_ACCESS_KEY: 'test-secret',
    AWS_REGION: 'us-east-1',
    AWS_ALLOW_HTTP: 'true',
    // S3 has conditional writes (If-None-Match), so commits need no lock service.
    conditional_put: 'etag',
  };
  return {
    endpoint,
    storageOptions,
    createBucket(name: string) {
      const script = [
        'import boto3, sys',
        "boto3.client('s3', endpoint_url=sys.argv[1], aws_access_key_id='test', aws_secret_access_key='test-secret',",
        "             region_name='us-east-1').create_bucket(Bucket=sys.argv[2])",
      ].join('\n');
      execFileSync('python3', ['-c', script, endpoint, name]);
    },
    stop() {
      child.kill();
    },
  };
}

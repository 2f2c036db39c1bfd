/**
 * The files of `kafka.tls` (CA bundle, client certificate and key), checked when the
 * configuration is loaded: librdkafka would otherwise refuse them only when the consumer is
 * created, with a message naming its own property rather than our key, or, for a CA bundle
 * that holds no certificate, fail every TLS handshake and retry forever.
 */
import { X509Certificate, createPrivateKey } from 'node:crypto';
import { readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import type { ConfigProblem } from '../errors.js';
import { isPlainObject } from './schema.js';

/** The keys of `kafka.tls` that name files, and what each file must hold. */
const FILES = {
  ca_file: 'PEM CA certificates (or a directory of them)',
  cert_file: 'a PEM client certificate',
  key_file: 'a PEM private key',
} as const;
type FileKey = keyof typeof FILES;

/** The first PEM certificate of `text`, or a reason it has none. */
function certificateIn(text: string): X509Certificate | string {
  if (!text.includes('-----BEGIN CERTIFICATE-----')) return 'holds no "-----BEGIN CERTIFICATE-----" block';
  try {
    return new X509Certificate(text);
  } catch (err) {
    return `holds no readable certificate (${err instanceof Error ? err.message : String(err)})`;
  }
}

function readProblem(err: unknown): string {
  const code = (err as { code?: unknown }).code;
  return typeof code === 'string' ? code : err instanceof Error ? err.message : String(err);
}

/**
 * Checks each `kafka.tls` file of the (substituted, not yet validated) document and replaces its
 * path by the absolute one, resolved against `baseDir` like `credentials.*_file`, so the file
 * librdkafka opens is the one checked here whatever its working directory. Values that are not
 * strings are left to the schema. An encrypted key is only checked for its PEM shape: its
 * password (`kafka.properties.ssl.key.password`) is librdkafka's to use.
 */
export function checkTlsFiles(doc: Record<string, unknown>, baseDir: string, problems: ConfigProblem[]): void {
  const kafka = doc['kafka'];
  const tls = isPlainObject(kafka) ? kafka['tls'] : undefined;
  if (!isPlainObject(tls)) return;
  let cert: X509Certificate | undefined;
  let keyPem: string | undefined;
  for (const key of Object.keys(FILES) as FileKey[]) {
    const file = tls[key];
    if (typeof file !== 'string' || file.trim() === '') continue;
    const at = `kafka.tls.${key}`;
    const abs = path.resolve(baseDir, file);
    const fail = (why: string) => problems.push({ key: at, message: `${abs} ${why} (expected ${FILES[key]})` });
    let text: string;
    try {
      // librdkafka also takes a directory of hashed CA certificates (c_rehash).
      if (key === 'ca_file' && statSync(abs).isDirectory()) {
        tls[key] = abs;
        continue;
      }
      text = readFileSync(abs, 'utf8');
    } catch (err) {
      fail(`cannot be read (${readProblem(err)})`);
      continue;
    }
    if (key === 'key_file') {
      if (!/-----BEGIN [A-Z ]*PRIVATE KEY-----/.test(text)) {
        fail('holds no "-----BEGIN ... PRIVATE KEY-----" block');
        continue;
      }
      keyPem = text;
    } else {
      const found = certificateIn(text);
      if (typeof found === 'string') {
        fail(found);
        continue;
      }
      if (key === 'cert_file') cert = found;
    }
    tls[key] = abs;
  }
  if (cert !== undefined && keyPem !== undefined && !keyPem.includes('ENCRYPTED')) {
    let matches: boolean;
    try {
      matches = cert.checkPrivateKey(createPrivateKey(keyPem));
    } catch (err) {
      problems.push({ key: 'kafka.tls.key_file', message: `holds no readable private key (${err instanceof Error ? err.message : String(err)})` });
      return;
    }
    if (!matches) problems.push({ key: 'kafka.tls.key_file', message: 'is not the key of the certificate in kafka.tls.cert_file' });
  }
}

/**
 * Secret masking for everything the process writes: a logger wrapper that masks the configured
 * credentials in messages and in every field (error messages included, nested values too), and
 * the same masking for text written directly (the CLI's last error). A library that puts a
 * connection string or a storage option into an error must not leak a credential through it.
 */
import type { LogFields, Logger } from './log.js';

const MASK = '***';
/** Shorter values would mask ordinary words. */
const MIN_SECRET_LENGTH = 4;

/** `text` with every occurrence of a secret replaced by `***`. */
export function maskSecrets(text: string, secrets: readonly string[]): string {
  let out = text;
  for (const secret of secrets) {
    if (secret.length >= MIN_SECRET_LENGTH && out.includes(secret)) out = out.split(secret).join(MASK);
  }
  return out;
}

function maskValue(value: unknown, secrets: readonly string[], depth = 0): unknown {
  if (typeof value === 'string') return maskSecrets(value, secrets);
  if (depth > 8 || value === null || typeof value !== 'object') return value;
  if (value instanceof Error) {
    const code = (value as Error & { code?: unknown }).code;
    return { name: value.name, message: maskSecrets(value.message, secrets), ...(code === undefined ? {} : { code }) };
  }
  if (Array.isArray(value)) return value.map((v) => maskValue(v, secrets, depth + 1));
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(value)) out[k] = maskValue(v, secrets, depth + 1);
  return out;
}

/** A logger that masks `secrets` in every record before `log` writes it. */
export function maskingLogger(log: Logger, secrets: readonly string[]): Logger {
  const kept = secrets.filter((s) => s.length >= MIN_SECRET_LENGTH);
  if (kept.length === 0) return log;
  const fields = (f: LogFields | undefined) => (f === undefined ? undefined : (maskValue(f, kept) as LogFields));
  return {
    error: (m, f) => log.error(maskSecrets(m, kept), fields(f)),
    warn: (m, f) => log.warn(maskSecrets(m, kept), fields(f)),
    info: (m, f) => log.info(maskSecrets(m, kept), fields(f)),
    debug: (m, f) => log.debug(maskSecrets(m, kept), fields(f)),
    trace: (m, f) => log.trace(maskSecrets(m, kept), fields(f)),
    child: (f) => maskingLogger(log.child(fields(f) ?? {}), kept),
  };
}

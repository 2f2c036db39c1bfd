/**
 * A translating proxy in front of fake-gcs-server, run as its own process by gcs.ts:
 *   node --import tsx gcs-xml-proxy.ts PORT UPSTREAM_URL
 *
 * delta-rs reaches GCS through object_store, which speaks the XML API. fake-gcs-server (1.56)
 * serves only part of it: a plain PUT is refused ("invalid uploadType"), x-goog-if-generation-match
 * and start-after are ignored (so commits could overwrite each other and a table with two or more
 * commits fails to load: "Invalid table version"), and there are no multipart uploads. This maps
 * those requests onto the JSON API, whose preconditions the server enforces under its own lock;
 * GET, HEAD and DELETE go through untouched.
 *
 * It runs in its own process because the tests block their event loop in spawnSync/execFileSync
 * while the CLI or the Python reader talk to the store.
 */
import { createHash, randomUUID } from 'node:crypto';
import { createServer, request, type IncomingMessage, type ServerResponse } from 'node:http';

interface GcsObject {
  name: string;
  size: string;
  updated: string;
  etag: string;
  generation: string;
}

interface GcsObjectList {
  items?: GcsObject[];
  prefixes?: string[];
  nextPageToken?: string;
}

interface MultipartUpload {
  bucket: string;
  name: string;
  contentType: string;
  parts: Map<number, Buffer>;
}

const [portArg, upstreamArg] = process.argv.slice(2);
if (!portArg || !upstreamArg) {
  console.error('usage: gcs-xml-proxy.ts PORT UPSTREAM_URL');
  process.exit(2);
}
const upstream = new URL(upstreamArg);
// Multipart parts live here until completion; object_store only uses multipart for large
// files (≥ 10 MiB by default), so this stays small in tests.
const uploads = new Map<string, MultipartUpload>();

function readBody(req: IncomingMessage): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => resolve(Buffer.concat(chunks)));
    req.on('error', reject);
  });
}

function xml(text: string): string {
  return text.replace(/[<>&'"]/g, (c) => `&#${c.charCodeAt(0)};`);
}

function reply(res: ServerResponse, status: number, headers: Record<string, string> = {}, body = ''): void {
  res.writeHead(status, { 'content-length': String(Buffer.byteLength(body)), ...headers });
  res.end(body);
}

async function relayError(res: ServerResponse, r: Response): Promise<void> {
  reply(res, r.status, { 'content-type': r.headers.get('content-type') ?? 'text/plain' }, await r.text());
}

/** A media upload; `ifGenerationMatch` "0" makes it create-only, atomically on the server. */
function upload(bucket: string, name: string, data: Buffer, contentType: string, ifGenerationMatch?: string): Promise<Response> {
  const url = new URL(`/upload/storage/v1/b/${encodeURIComponent(bucket)}/o`, upstream);
  url.searchParams.set('uploadType', 'media');
  url.searchParams.set('name', name);
  if (ifGenerationMatch !== undefined) url.searchParams.set('ifGenerationMatch', ifGenerationMatch);
  return fetch(url, { method: 'POST', body: data, headers: { 'content-type': contentType } });
}

/** Answers an XML-API write the way object_store reads it: ETag plus x-goog-generation headers. */
async function answerUpload(res: ServerResponse, r: Response, body?: (o: GcsObject) => string): Promise<void> {
  if (!r.ok) return relayError(res, r);
  const o = (await r.json()) as GcsObject;
  reply(res, 200, { etag: `"${o.etag}"`, 'x-goog-generation': o.generation }, body ? body(o) : '');
}

async function list(res: ServerResponse, bucket: string, query: URLSearchParams): Promise<void> {
  const prefix = query.get('prefix') ?? '';
  const delimiter = query.get('delimiter') ?? '';
  // S3-style start-after is exclusive; the JSON API's startOffset is inclusive.
  const after = query.get('start-after') ?? '';
  const objects: GcsObject[] = [];
  const prefixes: string[] = [];
  let pageToken = '';
  do {
    const url = new URL(`/storage/v1/b/${encodeURIComponent(bucket)}/o`, upstream);
    if (prefix) url.searchParams.set('prefix', prefix);
    if (delimiter) url.searchParams.set('delimiter', delimiter);
    if (after) url.searchParams.set('startOffset', after);
    if (pageToken) url.searchParams.set('pageToken', pageToken);
    const r = await fetch(url);
    if (!r.ok) return relayError(res, r);
    const page = (await r.json()) as GcsObjectList;
    objects.push(...(page.items ?? []).filter((o) => o.name > after));
    prefixes.push(...(page.prefixes ?? []).filter((p) => p > after));
    pageToken = page.nextPageToken ?? '';
  } while (pageToken);
  // One page always: object_store follows NextContinuationToken only when one is given.
  const body = [
    '<?xml version="1.0" encoding="UTF-8"?>',
    '<ListBucketResult>',
    `<Name>${xml(bucket)}</Name><Prefix>${xml(prefix)}</Prefix><KeyCount>${objects.length}</KeyCount>`,
    '<IsTruncated>false</IsTruncated>',
    ...objects.map(
      (o) =>
        `<Contents><Key>${xml(o.name)}</Key><Size>${o.size}</Size><LastModified>${o.updated}</LastModified>` +
        `<ETag>"${xml(o.etag)}"</ETag></Contents>`,
    ),
    ...prefixes.map((p) => `<CommonPrefixes><Prefix>${xml(p)}</Prefix></CommonPrefixes>`),
    '</ListBucketResult>',
  ].join('');
  reply(res, 200, { 'content-type': 'application/xml' }, body);
}

/** Server-side copy as download + create-only upload, so copy-if-not-exists stays atomic. */
async function copy(res: ServerResponse, bucket: string, name: string, source: string, ifGenerationMatch?: string): Promise<void> {
  const decoded = decodeURIComponent(source.replace(/^\//, ''));
  const slash = decoded.indexOf('/');
  const [srcBucket, srcName] = [decoded.slice(0, slash), decoded.slice(slash + 1)];
  const url = new URL(`/download/storage/v1/b/${encodeURIComponent(srcBucket)}/o/${encodeURIComponent(srcName)}`, upstream);
  url.searchParams.set('alt', 'media');
  const src = await fetch(url);
  if (!src.ok) return relayError(res, src);
  const data = Buffer.from(await src.arrayBuffer());
  const type = src.headers.get('content-type') ?? 'application/octet-stream';
  await answerUpload(res, await upload(bucket, name, data, type, ifGenerationMatch));
}

function passThrough(req: IncomingMessage, res: ServerResponse): void {
  const headers = { ...req.headers, host: upstream.host };
  const out = request(
    { host: upstream.hostname, port: upstream.port, method: req.method, path: req.url, headers },
    (r) => {
      res.writeHead(r.statusCode ?? 502, r.headers);
      r.pipe(res);
    },
  );
  out.on('error', (e) => reply(res, 502, {}, String(e)));
  req.pipe(out);
}

async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
  const url = new URL(req.url ?? '/', 'http://proxy');
  const [, rawBucket = '', ...rest] = url.pathname.split('/');
  const bucket = decodeURIComponent(rawBucket);
  const name = decodeURIComponent(rest.join('/'));
  const q = url.searchParams;
  const method = req.method ?? 'GET';
  const header = (h: string): string | undefined => {
    const v = req.headers[h];
    return Array.isArray(v) ? v[0] : v;
  };
  const contentType = header('content-type') ?? 'application/octet-stream';
  const ifGenerationMatch = header('x-goog-if-generation-match');

  if (!bucket) return reply(res, 200, {}, 'gcs-xml-proxy');
  if (!name) {
    if (method === 'GET') return list(res, bucket, q);
    return passThrough(req, res);
  }
  const uploadId = q.get('uploadId');
  if (method === 'POST' && q.has('uploads')) {
    await readBody(req);
    const id = randomUUID();
    uploads.set(id, { bucket, name, contentType, parts: new Map() });
    const body = `<?xml version="1.0" encoding="UTF-8"?><InitiateMultipartUploadResult><Bucket>${xml(bucket)}</Bucket><Key>${xml(name)}</Key><UploadId>${id}</UploadId></InitiateMultipartUploadResult>`;
    return reply(res, 200, { 'content-type': 'application/xml' }, body);
  }
  if (uploadId !== null) {
    const up = uploads.get(uploadId);
    const data = await readBody(req);
    if (!up) return reply(res, 404, {}, 'NoSuchUpload');
    if (method === 'PUT') {
      const part = Number(q.get('partNumber'));
      up.parts.set(part, data);
      return reply(res, 200, { etag: `"${createHash('md5').update(data).digest('hex')}"` });
    }
    uploads.delete(uploadId);
    if (method === 'DELETE') return reply(res, 204);
    const whole = Buffer.concat([...up.parts.entries()].sort(([a], [b]) => a - b).map(([, d]) => d));
    return answerUpload(res, await upload(up.bucket, up.name, whole, up.contentType), (o) =>
      `<?xml version="1.0" encoding="UTF-8"?><CompleteMultipartUploadResult><Bucket>${xml(bucket)}</Bucket><Key>${xml(name)}</Key><ETag>"${xml(o.etag)}"</ETag></CompleteMultipartUploadResult>`,
    );
  }
  if (method === 'PUT') {
    const source = header('x-goog-copy-source');
    if (source) {
      await readBody(req);
      return copy(res, bucket, name, source, ifGenerationMatch);
    }
    return answerUpload(res, await upload(bucket, name, await readBody(req), contentType, ifGenerationMatch));
  }
  return passThrough(req, res);
}

const server = createServer((req, res) => {
  handle(req, res).catch((e: unknown) => {
    if (!res.headersSent) reply(res, 500, {}, String(e));
    else res.destroy();
  });
});
server.listen(Number(portArg), '127.0.0.1');
// The parent holds our stdin open; when it goes (even if killed), so do we.
process.stdin.on('end', () => process.exit(0));
process.stdin.resume();

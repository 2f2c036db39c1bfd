/**
 * A second, private Kafka broker for tests that stop and restart it (the shared one on
 * KAFKA_PORT/9092 serves every other test at the same time and must stay up). It runs
 * scripts/kafka/kafka.sh with its own KAFKA_HOME_DIR (a temporary folder: config, data, logs,
 * pid), its own ports, and the shared jars (KAFKA_LIBS_DIR), so nothing is downloaded.
 */
import { execFile, spawnSync } from 'node:child_process';
import { existsSync, readFileSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { tempDir } from './env.js';

const KAFKA_SH = fileURLToPath(new URL('../../scripts/kafka/kafka.sh', import.meta.url));
const REPO = fileURLToPath(new URL('../..', import.meta.url));

/** The jar folder of the shared broker (as scripts/kafka/kafka.sh resolves it). */
export function sharedKafkaLibs(): string {
  return process.env.KAFKA_LIBS_DIR ?? join(process.env.KAFKA_HOME_DIR ?? join(REPO, '.kafka'), 'libs');
}

function portFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = createServer();
    server.once('error', () => resolve(false));
    server.listen(port, '127.0.0.1', () => server.close(() => resolve(true)));
  });
}

/**
 * A port p ≥ `from` such that p .. p + count - 1 are all free now: p is PLAINTEXT, p + 1 the
 * controller, p + 2 .. p + 4 the secured listeners (kafka.sh's default offsets).
 */
async function freePorts(count: number, from = 19092, to = 39000): Promise<number> {
  for (let attempt = 0; attempt < 200; attempt += 1) {
    const p = from + count * Math.floor(Math.random() * ((to - from) / count));
    let free = true;
    for (let i = 0; i < count && free; i += 1) free = await portFree(p + i);
    if (free) return p;
  }
  throw new Error(`no ${count} free ports in a row in [${from}, ${to})`);
}

/** The secured listeners scripts/kafka/kafka.sh can add (KAFKA_SECURITY), by listener name. */
export type SecuredListener = 'SASL_PLAINTEXT' | 'SSL' | 'SASL_SSL';
const LISTENER_OFFSET: Readonly<Record<SecuredListener, number>> = { SASL_PLAINTEXT: 2, SSL: 3, SASL_SSL: 4 };

/** The throwaway material kafka.sh generates for the secured listeners (after `up`). */
export interface BrokerSecurity {
  /** The CA certificate (PEM) that signed the broker's and the client's certificates. */
  caFile: string;
  /** A client certificate and key (PEM) the SSL listener (mTLS) accepts. */
  clientCertFile: string;
  clientKeyFile: string;
  /** The SCRAM-SHA-512 user of the SASL listeners and its password. */
  scramUser: string;
  scramPassword: string;
}

/** Options of {@link PrivateBroker.create}. */
export interface PrivateBrokerOptions {
  /** Secured listeners to add beside PLAINTEXT (which stays, for producing and health checks). */
  security?: readonly SecuredListener[];
}

/** Brokers not yet destroyed, stopped synchronously if the process exits without it. */
const live = new Set<PrivateBroker>();
process.on('exit', () => {
  for (const b of live) b.destroySync();
});

/** A single-node KRaft broker of its own, started and stopped through scripts/kafka/kafka.sh. */
export class PrivateBroker {
  readonly bootstrap: string;
  #destroyed = false;

  private constructor(
    readonly home: string,
    readonly port: number,
    readonly security: readonly SecuredListener[] = [],
  ) {
    this.bootstrap = `127.0.0.1:${port}`;
  }

  /** Picks a home and free ports; does not start anything. */
  static async create(options: PrivateBrokerOptions = {}): Promise<PrivateBroker> {
    const libs = sharedKafkaLibs();
    if (!existsSync(join(libs, '.complete'))) {
      throw new Error(`no Kafka jars in ${libs}: run 'bash scripts/kafka/kafka.sh libs' (or scripts/setup.sh) first`);
    }
    const security = options.security ?? [];
    const broker = new PrivateBroker(tempDir('kdr-broker-'), await freePorts(security.length > 0 ? 5 : 2), security);
    live.add(broker);
    return broker;
  }

  /** host:port of a secured listener (one asked for in {@link PrivateBroker.create}). */
  listener(name: SecuredListener): string {
    if (!this.security.includes(name)) throw new Error(`the broker was created without the ${name} listener`);
    return `127.0.0.1:${this.port + LISTENER_OFFSET[name]}`;
  }

  /** The CA, client certificate and SCRAM user kafka.sh generated (once the broker is up). */
  securityMaterial(): BrokerSecurity {
    const dir = join(this.home, 'security');
    const read = (name: string) => readFileSync(join(dir, name), 'utf8').trim();
    return {
      caFile: join(dir, 'ca.crt'),
      clientCertFile: join(dir, 'client.crt'),
      clientKeyFile: join(dir, 'client.key'),
      scramUser: read('scram-user'),
      scramPassword: read('scram-password'),
    };
  }

  env(): NodeJS.ProcessEnv {
    const env: NodeJS.ProcessEnv = {
      ...process.env,
      KAFKA_HOME_DIR: this.home,
      KAFKA_LIBS_DIR: sharedKafkaLibs(),
      KAFKA_PORT: String(this.port),
      KAFKA_CONTROLLER_PORT: String(this.port + 1),
      KAFKA_HEAP_OPTS: process.env.KDR_PRIVATE_BROKER_HEAP ?? '-Xms128m -Xmx512m',
      KAFKA_STOP_TIMEOUT: '30',
      KAFKA_SECURITY: this.security.join(',').toLowerCase(),
    };
    delete env.KAFKA_PURGE;
    for (const k of ['KAFKA_SASL_PLAINTEXT_PORT', 'KAFKA_SSL_PORT', 'KAFKA_SASL_SSL_PORT', 'KAFKA_SCRAM_USER', 'KAFKA_SCRAM_PASSWORD']) delete env[k];
    return env;
  }

  /** Runs a kafka.sh command without blocking the event loop (child output keeps flowing). */
  #run(args: string[], timeoutMs: number): Promise<string> {
    return new Promise((resolve, reject) => {
      execFile('bash', [KAFKA_SH, ...args], { env: this.env(), timeout: timeoutMs, encoding: 'utf8' }, (err, stdout, stderr) => {
        if (err) reject(new Error(`kafka.sh ${args.join(' ')} failed (home ${this.home}): ${err.message}\n${stdout}\n${stderr}\n${this.logTail()}`));
        else resolve(`${stdout}${stderr}`);
      });
    });
  }

  /** Starts the broker (formatting its storage the first time) and waits until it answers. */
  async up(): Promise<string> {
    if (this.#destroyed) throw new Error('the broker was destroyed');
    return this.#run(['up'], 240_000);
  }

  /** Stops the broker (SIGTERM, then SIGKILL after 30 s), keeping its data for the next `up`. */
  async down(): Promise<string> {
    return this.#run(['down'], 120_000);
  }

  /** The broker's pid while it runs. */
  pid(): number | undefined {
    const file = join(this.home, 'broker.pid');
    if (!existsSync(file)) return undefined;
    const pid = Number(readFileSync(file, 'utf8').trim());
    return Number.isSafeInteger(pid) && pid > 0 ? pid : undefined;
  }

  /** The last lines of the broker's logs, for failure messages. */
  logTail(lines = 30): string {
    const tail = (name: string) => {
      const path = join(this.home, name);
      if (!existsSync(path)) return '';
      return `--- ${name}\n${readFileSync(path, 'utf8').split('\n').slice(-lines).join('\n')}`;
    };
    return `${tail('broker.out')}\n${tail('broker.log')}`;
  }

  /** Stops the broker and deletes its home. Never throws. */
  async destroy(): Promise<void> {
    if (this.#destroyed) return;
    try {
      await this.#run(['down', '--purge'], 120_000);
    } catch {
      // destroySync below still removes what it can
    }
    this.destroySync();
  }

  /** Synchronous {@link PrivateBroker.destroy}, for process exit. */
  destroySync(): void {
    if (this.#destroyed) return;
    this.#destroyed = true;
    live.delete(this);
    spawnSync('bash', [KAFKA_SH, 'down', '--purge'], { env: this.env(), timeout: 60_000, stdio: 'ignore' });
    rmSync(this.home, { recursive: true, force: true });
  }
}

/**
 * Produces `values` (one record each, no key) with Kafka's own Java console producer: unlike
 * node-rdkafka's producer, which sends an empty value as null, it keeps an empty value empty.
 */
export function produceWithJavaClient(brokers: string, topic: string, values: readonly string[]): void {
  const log4j = join(REPO, '.kafka', 'log4j2-tools.properties');
  const run = spawnSync(
    'java',
    [
      '-cp',
      join(sharedKafkaLibs(), '*'),
      ...(existsSync(log4j) ? [`-Dlog4j2.configurationFile=${log4j}`] : []),
      'org.apache.kafka.tools.ConsoleProducer',
      '--bootstrap-server',
      brokers,
      '--topic',
      topic,
    ],
    { input: `${values.join('\n')}\n`, encoding: 'utf8', timeout: 60_000 },
  );
  if (run.status !== 0) throw new Error(`the console producer failed (${String(run.status)}): ${run.stderr}`);
}

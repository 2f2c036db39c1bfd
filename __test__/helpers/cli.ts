/** Runs the real CLI (dist/cli.js, as the package ships it) in a child process. */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';

export const CLI = fileURLToPath(new URL('../../dist/cli.js', import.meta.url));

/** The outcome of a finished CLI run. */
export interface CliResult {
  status: number | null;
  stdout: string;
  stderr: string;
}

/** Runs the CLI to completion. */
export function runCli(args: string[], options: { env?: NodeJS.ProcessEnv; timeoutMs?: number } = {}): CliResult {
  const r = spawnSync(process.execPath, [CLI, ...args], {
    encoding: 'utf8',
    env: { ...process.env, ...options.env },
    timeout: options.timeoutMs ?? 180_000,
  });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** A CLI process running in the background, with its output collected. */
export interface RunningCli {
  child: ChildProcess;
  output: () => string;
  /** Resolves when a line of its log output matches. */
  waitFor: (pattern: RegExp, timeoutMs?: number) => Promise<string>;
  exited: Promise<number | null>;
}

/** Starts the CLI without waiting for it. */
export function startCli(args: string[], env: NodeJS.ProcessEnv = {}): RunningCli {
  return startNode([CLI, ...args], env);
}

/** Starts `node <argv>` (e.g. an example under tsx) without waiting for it, collecting its output. */
export function startNode(argv: string[], env: NodeJS.ProcessEnv = {}): RunningCli {
  const child = spawn(process.execPath, argv, { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let text = '';
  const waiters: Array<{ pattern: RegExp; resolve: (line: string) => void }> = [];
  const onData = (chunk: Buffer) => {
    text += chunk.toString('utf8');
    for (const w of [...waiters]) {
      const line = text.split('\n').find((l) => w.pattern.test(l));
      if (line !== undefined) {
        waiters.splice(waiters.indexOf(w), 1);
        w.resolve(line);
      }
    }
  };
  child.stdout?.on('data', onData);
  child.stderr?.on('data', onData);
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  return {
    child,
    output: () => text,
    exited,
    waitFor: (pattern, timeoutMs = 120_000) =>
      new Promise<string>((resolve, reject) => {
        const line = text.split('\n').find((l) => pattern.test(l));
        if (line !== undefined) return resolve(line);
        const timer = setTimeout(() => reject(new Error(`timed out waiting for ${pattern}; output:\n${text.slice(-4000)}`)), timeoutMs);
        waiters.push({
          pattern,
          resolve: (l) => {
            clearTimeout(timer);
            resolve(l);
          },
        });
      }),
  };
}

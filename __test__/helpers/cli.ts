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

/** When to kill a run: after the n-th log line matching a pattern, or after some milliseconds. */
/** Kill when `line` has appeared `count` times (then after `delayMs` more, if given), or `afterMs` after the start. */
export type KillTrigger = { line: RegExp; count: number; delayMs?: number } | { afterMs: number };

/**
 * Starts the CLI once per trigger and kills it with SIGKILL when the trigger is reached (unless it
 * finished first). Returns how many runs were killed mid-run and the tail of each run's output.
 */
export async function killRunsAt(args: string[], triggers: readonly KillTrigger[]): Promise<{ killed: number; outputs: string[] }> {
  const count = (text: string, pattern: RegExp) => text.split('\n').filter((l) => pattern.test(l)).length;
  let killed = 0;
  const outputs: string[] = [];
  for (const trigger of triggers) {
    const cli = startCli(args);
    const deadline = Date.now() + 60_000;
    const started = Date.now();
    for (;;) {
      const reached = 'afterMs' in trigger ? Date.now() - started >= trigger.afterMs : count(cli.output(), trigger.line) >= trigger.count;
      if (reached || cli.child.exitCode !== null || Date.now() > deadline) break;
      await new Promise((r) => setTimeout(r, 5));
    }
    if ('delayMs' in trigger && trigger.delayMs !== undefined) await new Promise((r) => setTimeout(r, trigger.delayMs));
    if (cli.child.exitCode === null) {
      cli.child.kill('SIGKILL');
      killed += 1;
    }
    const code = await cli.exited;
    outputs.push(`exit ${code} signal ${cli.child.signalCode}:\n${cli.output().slice(-2500)}`);
  }
  return { killed, outputs };
}

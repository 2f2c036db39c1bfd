/**
 * The log file of `logging.file`: lines appended with synchronous writes, so none is lost when
 * the process exits or is killed, and reopened on demand (the CLI does it on SIGHUP) so that
 * logrotate can move the file away and signal: the lines after the signal go to a new file at
 * the configured path.
 */
import { closeSync, openSync, writeSync } from 'node:fs';
import { ConfigError } from './errors.js';

/** An append-only log file that can be reopened at its path. */
export class LogFile {
  readonly path: string;
  #fd: number;

  private constructor(path: string, fd: number) {
    this.path = path;
    this.#fd = fd;
  }

  /** Opens (creating it, owner and group may read) the file at `path` for appending. */
  static open(path: string): LogFile {
    try {
      return new LogFile(path, openSync(path, 'a', 0o640));
    } catch (error) {
      const reason = error instanceof Error ? error.message : String(error);
      throw new ConfigError([{ key: 'logging.file', message: `cannot open ${path} for appending: ${reason}` }]);
    }
  }

  /** Appends one line. */
  write(line: string): void {
    writeSync(this.#fd, `${line}\n`);
  }

  /**
   * Opens the path again (a new file if the old one was moved away) and closes the old one.
   * When the path cannot be opened, lines keep going to the old file and the error is returned.
   */
  reopen(): Error | undefined {
    let next: number;
    try {
      next = openSync(this.path, 'a', 0o640);
    } catch (error) {
      return error instanceof Error ? error : new Error(String(error));
    }
    const old = this.#fd;
    this.#fd = next;
    closeSync(old);
    return undefined;
  }

  close(): void {
    closeSync(this.#fd);
  }
}

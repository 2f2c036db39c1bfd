/** A logger for tests that keeps the messages it is given. */
import type { Logger } from '../../ts/index.js';

/** Keeps the messages of errors, warnings and info lines in `messages` (debug and trace are dropped). */
export function capturingLogger(messages: string[]): Logger {
  const keep = (message: string) => {
    messages.push(message);
  };
  const logger: Logger = { error: keep, warn: keep, info: keep, debug: () => {}, trace: () => {}, child: () => logger };
  return logger;
}

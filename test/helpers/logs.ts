// A logger for a part started inside a test process: every line it writes is kept, raw JSON text, so tests can
// check what was logged (and that no value ever was). No redaction here, so a leak cannot hide behind it.
import { Writable } from 'node:stream';
import { pino } from 'pino';
import type { Logger } from '../../common/log.js';

export function captureLogs(): { logs: string[]; logger: Logger } {
  const logs: string[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _encoding, done) {
      logs.push(...chunk.toString('utf8').split('\n').filter(Boolean));
      done();
    },
  });
  return { logs, logger: pino({ level: 'debug' }, sink) };
}

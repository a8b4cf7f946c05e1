// One logger setup for every part: JSON lines from pino, with fields that could hold secret material redacted as a
// second line of defence (the code never passes values to the logger in the first place).
import { pino, type Logger } from 'pino';

export type { Logger };

const REDACTED_PATHS = [
  'value', '*.value', 'secrets', '*.secrets', 'token', '*.token', 'authorization', '*.authorization',
  'req.headers.authorization', 'secretKey', '*.secretKey', 'contents', '*.contents',
];

export function createLogger(part: string, level = process.env.LOG_LEVEL ?? 'info'): Logger {
  return pino({ name: `nosana-secrets-${part}`, level, redact: { paths: REDACTED_PATHS, censor: '[redacted]' } });
}

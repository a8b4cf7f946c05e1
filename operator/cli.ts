// `nosana-secrets operator`: flags map onto the operator's environment variables, then it runs until SIGTERM.
import { parseArgs } from 'node:util';
import { ConfigError } from '../common/config.js';
import { createLogger } from '../common/log.js';
import { startOperator } from './main.js';
import { closeOnSignals } from '../common/shutdown.js';
import { CliError, command } from '../cli/usage.js';

export const OPERATOR_FLAGS = {
  'metrics-host': 'METRICS_HOST',
  'metrics-port': 'METRICS_PORT',
  namespace: 'WATCH_NAMESPACE',
  endpoint: 'NOSANA_SECRETS_ENDPOINT',
  'ca-file': 'NOSANA_SECRETS_CA_FILE',
  workers: 'OPERATOR_WORKERS',
  'lease-name': 'LEADER_ELECTION_LEASE_NAME',
  'lease-namespace': 'LEADER_ELECTION_NAMESPACE',
  identity: 'POD_NAME',
} as const;

/** An error the user fixes (a flag or variable): the CLI prints it with where to look, and exits 2. */
function usageError(message: string): CliError {
  return new CliError(message, `run ${command('operator --help')} to see its flags`, 2);
}

export async function runOperator(args: string[]): Promise<void> {
  const options = Object.fromEntries(Object.keys(OPERATOR_FLAGS).map((flag) => [flag, { type: 'string' as const }]));
  let values: Record<string, string | boolean | undefined>;
  try {
    ({ values } = parseArgs({ args, options: { ...options, 'no-leader-elect': { type: 'boolean' } }, allowPositionals: false }));
  } catch (error) {
    throw usageError((error as Error).message);
  }
  const env = { ...process.env };
  for (const [flag, variable] of Object.entries(OPERATOR_FLAGS)) {
    const value = values[flag];
    if (typeof value === 'string') env[variable] = value;
  }
  if (values['no-leader-elect'] === true) env.LEADER_ELECT = 'false';

  const log = createLogger('operator');
  let operator;
  try {
    operator = await startOperator(env, { log });
  } catch (error) {
    if (error instanceof ConfigError) {
      // Name the flag the user typed, not only the variable it sets.
      const flag = Object.entries(OPERATOR_FLAGS).find(([name, variable]) => values[name] !== undefined && error.message.startsWith(variable));
      throw usageError(flag ? `--${flag[0]}: ${error.message}` : error.message);
    }
    if ((error as NodeJS.ErrnoException).code === 'EADDRINUSE') {
      throw usageError(`metrics port ${env.METRICS_PORT ?? 8096} is already in use: pass --metrics-port with a free port`);
    }
    throw error;
  }
  const running = operator;
  closeOnSignals(log, () => running.close());
}

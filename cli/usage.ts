export class CliError extends Error {
  constructor(message: string, readonly fix?: string, readonly exitCode = 1) {
    super(message);
  }
}

/**
 * How the user runs this CLI, for hints that must work when pasted: `npx nosana-secrets` when started from a
 * node_modules/.bin link (npx in a clone, or a project that depends on it: not on PATH), else `nosana-secrets`
 * (installed or `npm link`ed onto PATH, or the container image). The script path, not npm's environment variables,
 * decides: those are inherited by every process an npm script starts.
 */
export function cliName(): string {
  return /[\\/]node_modules[\\/]\.bin[\\/]/.test(process.argv[1] ?? '') ? 'npx nosana-secrets' : 'nosana-secrets';
}

/** A command named as the user can type it, e.g. command('grants') is "`npx nosana-secrets grants`". */
export function command(text: string): string {
  return `\`${cliName()} ${text}\``;
}

interface CommandHelp {
  /** The command and its arguments, e.g. "get KEY [--job JOB]". */
  usage: string;
  /** One line for the overview. */
  summary: string;
  /** More lines for `<command> --help`. */
  details?: string;
}

const CLIENT_OPTIONS = `Options of every client command:
  --endpoint URL    the secrets server (default $NOSANA_SECRETS_ENDPOINT, else http://localhost:4124)
  --keypair FILE    your Solana keypair file (default $NOSANA_SECRETS_KEYPAIR, else ~/.config/solana/id.json)
  --ca-file FILE    trust an https server by this CA alone (default $NOSANA_SECRETS_CA_FILE)
Tokens are cached per server, address and job in ~/.config/nosana-secrets/tokens.json (mode 0600; set
NOSANA_SECRETS_CONFIG_DIR to move it), so consecutive commands do not sign a new login each time.`;

export const PART_COMMANDS: Record<string, CommandHelp> = {
  server: {
    usage: 'server [--host HOST] [--port PORT]',
    summary: 'the secrets API (default 0.0.0.0 port 4124; STORAGE_CONNECTION, default sqlite://db.sqlite)',
    details: `Flags win over the variables HOST and PORT; every other setting is an environment variable (see the
README's "Server settings"): STORAGE_CONNECTION, JWT_SECRET, ENCRYPTION_KEYS, LOG_LEVEL... HTTPS with
TLS_CERT_FILE and TLS_KEY_FILE; /metrics on its own port with METRICS_PORT.`,
  },
  'rotate-keys': {
    usage: 'rotate-keys',
    summary: 're-wrap every stored data key with the first key of ENCRYPTION_KEYS (servers keep serving)',
    details: `Run it with the servers' settings (STORAGE_CONNECTION, ENCRYPTION_KEYS) after putting a new key first in
ENCRYPTION_KEYS, keeping the old one after it, and restarting the servers. It shows its progress, and says when the
old key can be removed.`,
  },
  'create-keys-secret': {
    usage: 'create-keys-secret --name NAME [--namespace NS]',
    summary: 'create the Kubernetes Secret of JWT_SECRET and ENCRYPTION_KEYS when it is absent (the chart\'s hook Job)',
    details: `An existing Secret is left as it is, so the keys are generated once whatever renders the chart. Uses
KUBECONFIG or the in-cluster config.`,
  },
  operator: {
    usage: `operator [--namespace NS] [--metrics-host HOST] [--metrics-port 8096] [--endpoint URL] [--ca-file FILE]
           [--workers 4] [--lease-name NAME] [--lease-namespace NS] [--identity POD] [--no-leader-elect]`,
    summary: 'the Kubernetes operator for NosanaSecretBinding',
    details: `Uses KUBECONFIG or the in-cluster config. Each flag sets an environment variable of the same meaning:
WATCH_NAMESPACE, METRICS_HOST (default 0.0.0.0), METRICS_PORT, NOSANA_SECRETS_ENDPOINT, NOSANA_SECRETS_CA_FILE, OPERATOR_WORKERS,
LEADER_ELECTION_LEASE_NAME, LEADER_ELECTION_NAMESPACE, POD_NAME, LEADER_ELECT=false. See operator/README.md.`,
  },
  injector: {
    usage: `injector [--socket-dir /var/run/secrets-store-csi-providers] [--metrics-host HOST] [--metrics-port 8095]
           [--node-keypair FILE] [--endpoint URL...] [--ca-file FILE]`,
    summary: 'the Secrets Store CSI driver provider on <socket-dir>/nosana.sock',
    details: `Uses KUBECONFIG or the in-cluster config. Flags win over NOSANA_INJECTOR_SOCKET_DIR, METRICS_HOST
(default 0.0.0.0), METRICS_PORT, NOSANA_NODE_KEYPAIR, NOSANA_SECRETS_CA_FILE and NOSANA_INJECTOR_ENDPOINTS
(comma-separated; at least one is required). See injector/README.md.`,
  },
};

export const CLIENT_COMMAND_HELP: Record<string, CommandHelp> = {
  keygen: {
    usage: 'keygen [--out FILE]',
    summary: 'write a new Solana keypair file (JSON array of 64 numbers) and print its address',
    details: `Without --out it writes $NOSANA_SECRETS_KEYPAIR, else ~/.config/solana/id.json. It never overwrites a
file, and warns when the file is inside a git work tree (a private key is one \`git add\` away from a commit).`,
  },
  address: {
    usage: 'address [--keypair FILE]',
    summary: 'print the address of a keypair file (to give to an owner as --reader, for example)',
  },
  login: {
    usage: 'login [--job JOB --owner ADDRESS]',
    summary: 'log in and print the token (with --job, the read-only token of that job as granted by --owner)',
  },
  set: {
    usage: 'set KEY [VALUE|-]',
    summary: 'store a secret; with - or no VALUE it is read from stdin (keeps it out of shell history)',
  },
  list: { usage: 'list [--prefix P]', summary: 'list your secret names with version and times (never values)' },
  get: {
    usage: 'get KEY [--job JOB --owner ADDRESS]',
    summary: 'print one value (with --job, read it as a reader of that job, from the grant of --owner)',
    details: `A job login always names the owner whose grant it reads: anyone may grant any job id, so the job id alone
could pick a stranger's grant.`,
  },
  delete: { usage: 'delete KEY', summary: 'delete a secret' },
  grant: {
    usage: 'grant JOB KEY... --reader ADDRESS [--reader ADDRESS...]',
    summary: 'let the addresses that run JOB read these keys',
    details: `A key you have not stored yet may be granted (the job can read it once you set it); the command warns.`,
  },
  revoke: { usage: 'revoke JOB', summary: 'remove the grant of JOB' },
  grants: { usage: 'grants', summary: 'list your grants' },
};

export const CLIENT_COMMANDS = Object.keys(CLIENT_COMMAND_HELP);

function overview(commands: Record<string, CommandHelp>): string {
  return Object.values(commands).map(({ usage, summary }) =>
    usage.length <= 28 && !usage.includes('\n') ? `  ${usage.padEnd(28)}${summary}\n` : `  ${usage}\n${' '.repeat(30)}${summary}\n`).join('');
}

export function usage(): string {
  return `${cliName()}: secrets for jobs, with access proven by a Solana key

Usage: ${cliName()} COMMAND [options]   (${cliName()} COMMAND --help for one command)

Run the parts:
${overview(PART_COMMANDS)}
Client commands:
${overview(CLIENT_COMMAND_HELP)}
${CLIENT_OPTIONS}
`;
}

/** The help of one command, or undefined for a name that is not a command. */
export function commandHelp(name: string): string | undefined {
  const help = PART_COMMANDS[name] ?? CLIENT_COMMAND_HELP[name];
  if (!help) return undefined;
  const client = name in CLIENT_COMMAND_HELP && name !== 'keygen' && name !== 'address';
  return `usage: ${cliName()} ${help.usage}\n\n${help.summary}\n${help.details ? `\n${help.details}\n` : ''}` +
    (client ? `\n${CLIENT_OPTIONS}\n` : '');
}

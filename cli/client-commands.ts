// The owner's client commands. Tokens are cached per endpoint, address and job in the user's config directory
// (mode 0600) so consecutive commands do not sign again: a login signature is single-use.
import { existsSync } from 'node:fs';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { homedir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { ApiError, SecretsClient, ServerUnreachableError } from '../common/client.js';
import { envCaFile } from '../common/config.js';
import { generateKeypair, readKeypairFile, writeKeypairFile, type Keypair } from '../common/login.js';
import { jobProblem, keyProblem } from '../common/names.js';
import { CliError, cliName, command as named } from './usage.js';

const TOKEN_MARGIN_MS = 30_000;

interface CachedToken { token: string; expiresAt: string }

function configDir(): string {
  return process.env.NOSANA_SECRETS_CONFIG_DIR ?? join(homedir(), '.config', 'nosana-secrets');
}

function defaultKeypairPath(): string {
  return process.env.NOSANA_SECRETS_KEYPAIR ?? join(homedir(), '.config', 'solana', 'id.json');
}

async function loadKeypair(path: string): Promise<Keypair> {
  if (!existsSync(path)) {
    throw new CliError(`no keypair file at ${path}`, `create one with ${named(`keygen --out ${path}`)}, or pass --keypair FILE`);
  }
  try {
    return await readKeypairFile(path);
  } catch (error) {
    throw new CliError((error as Error).message, `pass --keypair with a file written by ${named('keygen')} or \`solana-keygen new\``);
  }
}

/** The git work tree a path is in (the nearest folder above it holding .git), if any. */
function gitWorkTree(path: string): string | undefined {
  for (let dir = dirname(resolve(path)); ; dir = dirname(dir)) {
    if (existsSync(join(dir, '.git'))) return dir;
    if (dirname(dir) === dir) return undefined;
  }
}

async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
  // One trailing newline comes from `echo` or a heredoc, not from the secret.
  return Buffer.concat(chunks).toString('utf8').replace(/\r?\n$/, '');
}

function requireName(kind: 'key' | 'job', value: string | undefined, usage: string): string {
  if (value === undefined) throw new CliError(`missing ${kind}`, `usage: ${named(usage)}`, 2);
  const problem = kind === 'key' ? keyProblem(value) : jobProblem(value);
  if (problem) throw new CliError(`${kind} "${value}" ${problem}`, `choose a ${kind} name that fits the rule`, 2);
  return value;
}

/** A job login names the job and the owner whose grant it reads: the job id alone could be any key's grant. */
interface JobScope {
  job: string;
  owner: string;
}

/** The --job and --owner of a command, both or neither. */
function jobScope(values: { job?: string; owner?: string }, usage: string): JobScope | undefined {
  if (values.job === undefined) {
    if (values.owner !== undefined) throw new CliError('--owner goes with --job', `usage: ${usage}`, 2);
    return undefined;
  }
  const job = requireName('job', values.job, usage);
  if (values.owner === undefined) {
    throw new CliError(`--job ${job} needs --owner`, `name the address that granted the job (the owner prints it with ${named('address')}): --owner ADDRESS`, 2);
  }
  return { job, owner: values.owner };
}

class Session {
  private readonly cacheFile = join(configDir(), 'tokens.json');
  constructor(readonly client: SecretsClient, readonly endpoint: string, readonly keypair: Keypair) {}

  private cacheKey(scope?: JobScope): string {
    return `${this.endpoint}|${this.keypair.address}|${scope ? `${scope.job}|${scope.owner}` : ''}`;
  }

  private async readCache(): Promise<Record<string, CachedToken>> {
    try {
      return JSON.parse(await readFile(this.cacheFile, 'utf8')) as Record<string, CachedToken>;
    } catch {
      return {};
    }
  }

  private async writeCache(scope: JobScope | undefined, token: CachedToken | undefined): Promise<void> {
    const cache = await this.readCache();
    const now = Date.now();
    for (const [key, value] of Object.entries(cache)) if (Date.parse(value.expiresAt) < now) delete cache[key];
    if (token) cache[this.cacheKey(scope)] = token;
    else delete cache[this.cacheKey(scope)];
    await mkdir(dirname(this.cacheFile), { recursive: true, mode: 0o700 });
    await writeFile(this.cacheFile, JSON.stringify(cache, null, 2), { mode: 0o600 });
  }

  async login(scope?: JobScope): Promise<CachedToken> {
    const token = await this.client.login(this.keypair, scope?.job, scope?.owner);
    await this.writeCache(scope, token);
    return token;
  }

  /** Runs `action` with a valid token; a token the server no longer accepts is replaced once. */
  async withToken<T>(action: (token: string) => Promise<T>, scope?: JobScope): Promise<T> {
    const cached = (await this.readCache())[this.cacheKey(scope)];
    if (cached && Date.parse(cached.expiresAt) - TOKEN_MARGIN_MS > Date.now()) {
      try {
        return await action(cached.token);
      } catch (error) {
        if (!(error instanceof ApiError && error.status === 403 && /token/.test(error.message))) throw error;
        await this.writeCache(scope, undefined);
      }
    }
    return action((await this.login(scope)).token);
  }
}

export async function runClientCommand(command: string, args: string[]): Promise<void> {
  const { values, positionals } = parseArgs({
    args,
    allowPositionals: true,
    options: {
      endpoint: { type: 'string' },
      'ca-file': { type: 'string' },
      keypair: { type: 'string' },
      out: { type: 'string' },
      job: { type: 'string' },
      owner: { type: 'string' },
      prefix: { type: 'string' },
      reader: { type: 'string', multiple: true },
    },
  });
  const out = (text: string) => process.stdout.write(`${text}\n`);

  if (command === 'keygen') {
    const path = values.out ?? defaultKeypairPath();
    if (existsSync(path)) throw new CliError(`${path} already exists`, 'pass --out with a new file name; an existing key is never overwritten');
    await mkdir(dirname(path), { recursive: true, mode: 0o700 });
    const keypair = generateKeypair();
    await writeKeypairFile(path, keypair);
    out(keypair.address);
    process.stderr.write(`wrote ${path} (keep it secret: it is the key to your secrets)\n`);
    const workTree = gitWorkTree(path);
    if (workTree !== undefined) {
      process.stderr.write(`warning: ${path} is inside the git work tree ${workTree}: one \`git add\` from a commit. ` +
        `Move it out (e.g. to ~/.config/nosana-secrets/), or make sure .gitignore covers it\n`);
    }
    return;
  }

  if (command === 'address') {
    out((await loadKeypair(values.keypair ?? defaultKeypairPath())).address);
    return;
  }

  const endpoint = values.endpoint ?? process.env.NOSANA_SECRETS_ENDPOINT ?? 'http://localhost:4124';
  let caFile: string | undefined;
  try {
    caFile = envCaFile(process.env, values['ca-file']);
  } catch (error) {
    throw new CliError((error as Error).message, 'pass --ca-file with the CA that signed the server\'s certificate, or unset NOSANA_SECRETS_CA_FILE', 2);
  }
  const session = new Session(new SecretsClient({ endpoint, caFile }), endpoint, await loadKeypair(values.keypair ?? defaultKeypairPath()));
  const { client } = session;
  try {
    switch (command) {
      case 'login': {
        out((await session.login(jobScope(values, 'login [--job JOB --owner ADDRESS]'))).token);
        return;
      }
      case 'set': {
        const key = requireName('key', positionals[0], 'set KEY [VALUE|-]');
        const value = positionals[1] === undefined || positionals[1] === '-' ? await readStdin() : positionals[1];
        if (value === '') throw new CliError('the value is empty', `pass the value as an argument, or pipe it in: printf %s "$VALUE" | ${cliName()} set KEY -`);
        const meta = await session.withToken((token) => client.putSecret(token, key, value));
        out(`stored ${meta.key} (version ${meta.version})`);
        return;
      }
      case 'list': {
        const { secrets } = await session.withToken((token) => client.listSecrets(token, values.prefix));
        for (const s of secrets) out(`${s.key}\tversion ${s.version}\tupdated ${s.updatedAt}`);
        // On stderr, so that a script reading the list gets no line for no secret.
        if (secrets.length === 0) {
          process.stderr.write(values.prefix === undefined ? `no secrets yet: store one with ${named('set KEY -')}\n` : `no secrets under the prefix "${values.prefix}"\n`);
        }
        return;
      }
      case 'get': {
        const key = requireName('key', positionals[0], 'get KEY [--job JOB --owner ADDRESS]');
        const secret = await session.withToken((token) => client.getSecret(token, key), jobScope(values, 'get KEY [--job JOB --owner ADDRESS]'));
        process.stdout.write(secret.value);
        if (process.stdout.isTTY) process.stdout.write('\n');
        return;
      }
      case 'delete': {
        const key = requireName('key', positionals[0], 'delete KEY');
        await session.withToken((token) => client.deleteSecret(token, key));
        out(`deleted ${key}`);
        return;
      }
      case 'grant': {
        const usage = 'grant JOB KEY... --reader ADDRESS';
        const job = requireName('job', positionals[0], usage);
        const keys = positionals.slice(1).map((key) => requireName('key', key, usage));
        if (keys.length === 0) throw new CliError('no key to grant', `usage: ${named(usage)}`, 2);
        const readers = values.reader ?? [];
        if (readers.length === 0) {
          throw new CliError('no reader', 'name the address that runs the job (the node) with --reader ADDRESS', 2);
        }
        const grant = await session.withToken((token) => client.putGrant(token, job, keys, readers));
        out(`granted ${grant.keys.join(', ')} of job ${grant.job} to ${grant.readers.join(', ')}`);
        // Granting a key before storing it is allowed (a grant may be set up ahead of the value), but it is more often
        // a typo, and the job would get a 404: say so.
        const prefix = grant.keys.reduce((common, key) => { while (!key.startsWith(common)) common = common.slice(0, -1); return common; });
        const { secrets } = await session.withToken((token) => client.listSecrets(token, prefix));
        const stored = new Set(secrets.map((s) => s.key));
        const missing = grant.keys.filter((key) => !stored.has(key));
        if (missing.length > 0) {
          const [them, it] = missing.length === 1 ? ['secret', 'it'] : ['secrets', 'them'];
          process.stderr.write(`warning: you have no ${them} named ${missing.join(', ')} yet: job ${grant.job} cannot read ${it} ` +
            `until you store ${it} with ${named('set KEY -')} (${named('list')} shows your keys)\n`);
        }
        return;
      }
      case 'revoke': {
        const job = requireName('job', positionals[0], 'revoke JOB');
        await session.withToken((token) => client.deleteGrant(token, job));
        out(`revoked the grant of job ${job}`);
        return;
      }
      case 'grants': {
        const { grants } = await session.withToken((token) => client.listGrants(token));
        for (const g of grants) out(`${g.job}\tkeys ${g.keys.join(',')}\treaders ${g.readers.join(',')}`);
        if (grants.length === 0) process.stderr.write(`no grants yet: let a job read keys with ${named('grant JOB KEY... --reader ADDRESS')}\n`);
        return;
      }
    }
  } catch (error) {
    if (error instanceof ServerUnreachableError && /certificate|self.signed/i.test(error.message)) {
      throw new CliError(error.message, 'pass --ca-file FILE (or set NOSANA_SECRETS_CA_FILE) with the CA that signed the server\'s certificate');
    }
    if (error instanceof ServerUnreachableError) {
      throw new CliError(error.message, `start the server with ${named('server')} (or \`npm start\` in a clone), or pass --endpoint URL (or set NOSANA_SECRETS_ENDPOINT)`);
    }
    if (error instanceof ApiError) {
      const fixes: Record<number, string> = {
        400: 'correct the input named above',
        403: 'check that you use the right --keypair, and for a job that it was granted to this address',
        404: command === 'revoke' ? `run ${named('grants')} to see your grants` : `run ${named('list')} to see your keys`,
        409: 'see the message above',
        503: 'the server cannot reach its storage: try again shortly',
      };
      throw new CliError(`${error.message} (HTTP ${error.status} ${error.type})`, fixes[error.status]);
    }
    throw error;
  }
}

// `nosana-secrets create-keys-secret --name NAME`: creates the Kubernetes Secret with the server's JWT_SECRET and
// ENCRYPTION_KEYS when it does not exist, and leaves an existing one exactly as it is. The chart runs it as a
// pre-install/pre-upgrade hook Job, so keys are made once, in the cluster: a render (helm template, Argo CD) never
// holds keys and cannot replace them. It only creates: a Secret that exists is reported by the API server (409),
// never read, so its ServiceAccount needs `create` on Secrets and nothing else.
import { existsSync, readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { createLogger } from '../common/log.js';
import { createKubeClients, loadKubeConfig, messageOf, statusOf } from '../operator/kube/clients.js';
import { newJwtSecret } from '../server/config.js';
import { newKeyringEntry } from '../server/encryption.js';
import { CliError } from './usage.js';

const SERVICE_ACCOUNT_NAMESPACE = '/var/run/secrets/kubernetes.io/serviceaccount/namespace';

export async function createKeysSecret(args: string[]): Promise<void> {
  const { values } = parseArgs({ args, options: { name: { type: 'string' }, namespace: { type: 'string' } }, allowPositionals: false });
  const name = values.name;
  if (!name) throw new CliError('no Secret name', 'pass --name NAME (the chart passes <release>-nosana-secrets-keys)', 2);
  const namespace = values.namespace ?? process.env.POD_NAMESPACE ??
    (existsSync(SERVICE_ACCOUNT_NAMESPACE) ? readFileSync(SERVICE_ACCOUNT_NAMESPACE, 'utf8').trim() : undefined);
  if (!namespace) throw new CliError('no namespace', 'pass --namespace NS, or set POD_NAMESPACE', 2);

  const log = createLogger('create-keys-secret').child({ secret: name, namespace });
  const kube = createKubeClients(loadKubeConfig());
  try {
    await kube.core.createNamespacedSecret({
      namespace,
      body: {
        apiVersion: 'v1', kind: 'Secret', type: 'Opaque',
        metadata: {
          name, namespace,
          labels: { 'app.kubernetes.io/part-of': 'nosana-secrets', 'app.kubernetes.io/component': 'keys', 'app.kubernetes.io/managed-by': 'nosana-secrets' },
          annotations: { 'nosana.io/note': 'the server\'s JWT secret and key-encryption keys: back it up; without it no stored value decrypts' },
        },
        stringData: { JWT_SECRET: newJwtSecret(), ENCRYPTION_KEYS: `${newKeyringEntry()}\n` },
      },
    });
    log.info('created the keys Secret with a new JWT secret and key-encryption key');
    process.stdout.write(`created Secret ${namespace}/${name}\n`);
  } catch (error) {
    if (statusOf(error) !== 409) throw new CliError(`cannot create Secret ${namespace}/${name}: ${messageOf(error)}`, 'check that the Job\'s ServiceAccount may create Secrets in this namespace');
    log.info('the keys Secret exists: left as it is');
    process.stdout.write(`Secret ${namespace}/${name} exists: left as it is\n`);
  } finally {
    kube.close();
  }
}

export class CliError extends Error {
  constructor(message: string, readonly fix?: string, readonly exitCode = 1) {
    super(message);
  }
}

export const USAGE = `nosana-secrets: secrets for jobs, with access proven by a Solana key

Run the parts:
  server                      the secrets API (PORT, default 4124; STORAGE_CONNECTION, default sqlite://db.sqlite;
                              HTTPS with TLS_CERT_FILE and TLS_KEY_FILE; /metrics on METRICS_PORT)
  rotate-keys                 re-wrap every stored data key with the first key of ENCRYPTION_KEYS (server keeps serving)
  create-keys-secret --name NAME [--namespace NS]
                              create the Kubernetes Secret of JWT_SECRET and ENCRYPTION_KEYS when it is absent; an
                              existing one is left as it is (the chart's hook Job; KUBECONFIG or in-cluster config)
  operator [--namespace NS] [--metrics-port 8096] [--endpoint URL] [--ca-file FILE] [--workers 4] [--lease-name NAME]
           [--lease-namespace NS] [--identity POD] [--no-leader-elect]
                              the Kubernetes operator for NosanaSecretBinding (KUBECONFIG or in-cluster config;
                              same settings as WATCH_NAMESPACE, METRICS_PORT, NOSANA_SECRETS_ENDPOINT, POD_NAME...)
  injector [--socket-dir /var/run/secrets-store-csi-providers] [--metrics-port 8095] [--node-keypair FILE]
           [--endpoint URL...] [--ca-file FILE]
                              the Secrets Store CSI driver provider on <socket-dir>/nosana.sock (KUBECONFIG or
                              in-cluster config; same as NOSANA_INJECTOR_SOCKET_DIR, METRICS_PORT,
                              NOSANA_NODE_KEYPAIR, NOSANA_INJECTOR_ENDPOINTS, NOSANA_SECRETS_CA_FILE)

Client commands (options: --endpoint URL, default $NOSANA_SECRETS_ENDPOINT or http://localhost:4124;
                 --keypair FILE, default $NOSANA_SECRETS_KEYPAIR or ~/.config/solana/id.json;
                 --ca-file FILE, default $NOSANA_SECRETS_CA_FILE: trust an https server by this CA alone):
  keygen [--out FILE]         write a new Solana keypair file (JSON array of 64 numbers) and print its address
  login [--job JOB]           log in and print the token (with --job, the read-only token of that job)
  set KEY [VALUE|-]           store a secret; with - or no VALUE it is read from stdin (keeps it out of shell history)
  list [--prefix P]           list your secret names with version and times (never values)
  get KEY [--job JOB]         print one value (with --job, read it as a reader of that job)
  delete KEY                  delete a secret
  grant JOB KEY... --reader ADDRESS [--reader ADDRESS...]
                              let the addresses that run JOB read these keys
  revoke JOB                  remove the grant of JOB
  grants                      list your grants
`;

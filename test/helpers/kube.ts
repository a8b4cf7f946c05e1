// The real kube-apiserver that test/env starts, as a client-node KubeConfig; a missing one fails loudly.
import { KubeConfig } from '@kubernetes/client-node';

export function kubeConfig(): KubeConfig {
  const path = process.env.KUBECONFIG;
  if (!path) throw new Error('KUBECONFIG is not set: run `bash test/env up kube` (or `npm test`), which starts a kube-apiserver and exports it');
  const kc = new KubeConfig();
  kc.loadFromFile(path);
  return kc;
}

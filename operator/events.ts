// Events (events.k8s.io/v1) on bindings, shown by `kubectl describe nsb`. Notes name keys, Secrets and reasons, never
// values. An Event that cannot be written is logged and dropped: it must never fail a reconcile.
import { V1MicroTime, type EventsV1Api } from '@kubernetes/client-node';
import { randomBytes } from 'node:crypto';
import type { Logger } from '../common/log.js';
import { API_VERSION, KIND, type NosanaSecretBinding } from './api/v1alpha1.js';
import { messageOf } from './kube/clients.js';

export const REPORTING_CONTROLLER = 'secrets.nosana.io/operator';
const NOTE_MAX = 1024;

export class EventRecorder {
  constructor(private readonly api: EventsV1Api, private readonly instance: string, private readonly log: Logger) {}

  async record(binding: NosanaSecretBinding, type: 'Normal' | 'Warning', reason: string, note: string): Promise<void> {
    const { name, namespace, uid, resourceVersion } = binding.metadata;
    try {
      await this.api.createNamespacedEvent({
        namespace,
        body: {
          metadata: { name: `${name}.${randomBytes(8).toString('hex')}`, namespace },
          eventTime: new V1MicroTime(),
          reportingController: REPORTING_CONTROLLER,
          reportingInstance: this.instance.slice(0, 128),
          action: 'Reconcile',
          type,
          reason,
          note: note.length > NOTE_MAX ? `${note.slice(0, NOTE_MAX - 1)}…` : note,
          regarding: { apiVersion: API_VERSION, kind: KIND, name, namespace, uid, resourceVersion },
        },
      });
    } catch (error) {
      this.log.warn({ namespace, binding: name, reason, err: messageOf(error) }, 'could not record an event');
    }
  }
}

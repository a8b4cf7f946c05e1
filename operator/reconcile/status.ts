// The binding's status as the reconcile computes it, and the Ready condition's transitions: lastTransitionTime moves
// only when the condition's status changes, so a binding that keeps failing for the same reason is written once.
import {
  CONDITION_READY, type Condition, type NosanaSecretBinding, type NosanaSecretBindingStatus,
} from '../api/v1alpha1.js';

export function buildReadyCondition(
  binding: NosanaSecretBinding, status: Condition['status'], reason: string, message: string, now: Date,
): Condition {
  const previous = binding.status?.conditions?.find((c) => c.type === CONDITION_READY);
  return {
    type: CONDITION_READY,
    status,
    observedGeneration: binding.metadata.generation,
    lastTransitionTime: previous && previous.status === status ? previous.lastTransitionTime : now.toISOString(),
    reason,
    message,
  };
}

/** Whether the Ready condition differs in status or reason: worth an Event. */
export function isTransition(binding: NosanaSecretBinding, next: Condition): boolean {
  const previous = binding.status?.conditions?.find((c) => c.type === CONDITION_READY);
  return !previous || previous.status !== next.status || previous.reason !== next.reason;
}

export function sameStatus(a: NosanaSecretBindingStatus | undefined, b: NosanaSecretBindingStatus): boolean {
  return JSON.stringify(normalise(a ?? {})) === JSON.stringify(normalise(b));
}

/** Key order and absent-versus-undefined must not make two equal statuses look different. */
function normalise(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(normalise);
  if (value && typeof value === 'object') {
    return Object.fromEntries(Object.entries(value).filter(([, v]) => v !== undefined).sort(([a], [b]) => a.localeCompare(b))
      .map(([k, v]) => [k, normalise(v)]));
  }
  return value;
}

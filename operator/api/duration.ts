// Durations in the spec use Go's format (`90s`, `15m`, `1h30m`, `250ms`), the one the CRD's pattern and its CEL
// `duration()` rule accept, so a value the API server let through always parses here.
const UNIT_MS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 };
const WHOLE = /^([0-9]+(\.[0-9]+)?(ms|s|m|h))+$/;
const PART = /([0-9]+(?:\.[0-9]+)?)(ms|s|m|h)/g;

/** Milliseconds of a Go duration string; throws naming the value when it is not one. */
export function parseDuration(text: string): number {
  if (!WHOLE.test(text)) throw new Error(`${JSON.stringify(text)} is not a duration: write e.g. 30s, 15m or 1h30m`);
  let total = 0;
  for (const [, amount, unit] of text.matchAll(PART)) total += Number(amount) * UNIT_MS[unit!]!;
  return Math.round(total);
}

// Runs Prometheus's own promtool (built by test/env) on the chart's alert rules and the dashboard's expressions:
// `promtool check rules` parses them as Prometheus would, `promtool test rules` evaluates the alerts on given series.
import { execFile } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { stringify } from 'yaml';
import { find, render } from './helm.js';

const run = promisify(execFile);

/** The promtool binary; a missing one fails the test with the fix, never skips it. */
export function promtoolBinary(): string {
  const promtool = process.env.NS_TEST_PROMTOOL;
  if (!promtool) throw new Error('NS_TEST_PROMTOOL is not set: run `bash test/env up prometheus` (or `npm test`), which builds promtool and exports it');
  return promtool;
}

export interface PromtoolResult {
  code: number;
  /** stdout and stderr together: promtool writes its verdicts to either. */
  output: string;
}

export async function promtool(args: string[]): Promise<PromtoolResult> {
  try {
    const { stdout, stderr } = await run(promtoolBinary(), args, { maxBuffer: 16 * 1024 * 1024 });
    return { code: 0, output: stdout + stderr };
  } catch (error) {
    const failure = error as { code?: number | string; stdout?: string; stderr?: string };
    if (typeof failure.code !== 'number') throw error;
    return { code: failure.code, output: (failure.stdout ?? '') + (failure.stderr ?? '') };
  }
}

export interface RuleGroup {
  name: string;
  rules: ({ alert: string; expr: string; for?: string } | { record: string; expr: string })[];
}

/** Writes a Prometheus rule file (what Prometheus Operator makes of a PrometheusRule) and returns its path. */
export function writeRuleFile(groups: RuleGroup[]): string {
  const file = join(mkdtempSync(join(tmpdir(), 'ns-promtool-')), 'rules.yaml');
  writeFileSync(file, stringify({ groups }));
  return file;
}

/** The chart's PrometheusRule, rendered with these values, as a rule file. */
export async function chartRuleFile(values: object): Promise<{ file: string; groups: RuleGroup[] }> {
  const rule = find(await render(values), 'PrometheusRule');
  const groups = (rule.spec as { groups: RuleGroup[] }).groups;
  return { file: writeRuleFile(groups), groups };
}

/** One `promtool test rules` test group: input series and the alerts expected at given times. */
export interface RuleTest {
  name: string;
  interval?: string;
  input_series: { series: string; values: string }[];
  alert_rule_test: {
    eval_time: string;
    alertname: string;
    exp_alerts: { exp_labels: Record<string, string>; exp_annotations?: Record<string, string> }[];
  }[];
}

/** Runs `promtool test rules` on these tests against a rule file. */
export async function testRules(ruleFile: string, tests: RuleTest[]): Promise<PromtoolResult> {
  const file = join(mkdtempSync(join(tmpdir(), 'ns-promtool-test-')), 'tests.yaml');
  writeFileSync(file, stringify({
    rule_files: [ruleFile],
    evaluation_interval: '30s',
    tests: tests.map((test) => ({ interval: '30s', ...test })),
  }));
  return promtool(['test', 'rules', file]);
}

// The chart's alerts, evaluated by Prometheus's own rule engine (`promtool test rules`): each alert fires on the series
// a real failure produces and stays quiet on a healthy one. The binding alert is fed the series a real operator exports
// for a real broken binding on the real apiserver.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { KubeClients } from '../../operator/kube/clients.js';
import {
  bindingObject, bindingSpec, createBinding, grant, scrape, startOperatorWorld, stopOperatorWorld, waitForReady,
  type SecretsWorld, type TestOperator,
} from '../operator/cluster.js';
import { NAMESPACE, RELEASE } from './helm.js';
import { chartRuleFile, promtool, testRules, type RuleGroup, type RuleTest } from './promtool.js';

const VALUES = { metrics: { serviceMonitor: { enabled: true } }, prometheusRule: { enabled: true } };
const PREFIX = `${RELEASE}-nosana-secrets`;
/** Prometheus Operator names a target's job after its Service. */
const JOB = { server: `${PREFIX}-server`, operator: `${PREFIX}-operator-metrics`, injector: `${PREFIX}-injector-metrics` };
const NS = `namespace="${NAMESPACE}"`;

let ruleFile: string;
let groups: RuleGroup[];

beforeAll(async () => {
  ({ file: ruleFile, groups } = await chartRuleFile(VALUES));
});

/** `promtool test rules` must pass; its own report is the failure message. */
async function expectRuleTests(tests: RuleTest[]): Promise<string> {
  const result = await testRules(ruleFile, tests);
  expect(result.code, result.output).toBe(0);
  expect(result.output).toContain('SUCCESS');
  return result.output;
}

/** A counter's values every 30 s that grows by one every `every` samples, starting at `from` (blank before). */
function counterValues(samples: number, every: number, from = 0): string {
  return Array.from({ length: samples }, (_, i) => (i < from ? '_' : String(Math.floor((i - from) / every) + 1))).join(' ');
}

describe('the alert rules', () => {
  it('parse as Prometheus rules (promtool check rules) and have one rule test each below', async () => {
    const check = await promtool(['check', 'rules', ruleFile]);
    expect(check.code, check.output).toBe(0);
    const alerts = groups.flatMap((g) => g.rules.map((r) => ('alert' in r ? r.alert : r.record)));
    expect(alerts.sort()).toEqual([
      'NosanaSecretsBindingNotReady', 'NosanaSecretsFailedLoginSpike', 'NosanaSecretsInjectorDown', 'NosanaSecretsMountsFailing',
      'NosanaSecretsOperatorDown', 'NosanaSecretsOperatorNoLeader', 'NosanaSecretsServerDown', 'NosanaSecretsServerErrors',
      'NosanaSecretsStorageDown',
    ]);
  });

  it('render the rules that read `up` only with the ServiceMonitors that give those jobs', async () => {
    const { groups: unscraped } = await chartRuleFile({ prometheusRule: { enabled: true } });
    const names = unscraped.flatMap((g) => g.rules.map((r) => ('alert' in r ? r.alert : '')));
    expect(names).not.toContain('NosanaSecretsServerDown');
    expect(names).not.toContain('NosanaSecretsOperatorDown');
    expect(names).not.toContain('NosanaSecretsInjectorDown');
    expect(unscraped.flatMap((g) => g.rules.map((r) => r.expr)).join('\n')).not.toMatch(/\bup\{/);
  });
});

describe('NosanaSecretsBindingNotReady, on the series a real operator exports', () => {
  let kube: KubeClients;
  let namespace: string;
  let world: SecretsWorld;
  let operator: TestOperator;
  let broken: string;
  let healthy: string;

  beforeAll(async () => {
    ({ kube, namespace, world, operator } = await startOperatorWorld('nsb-alerts'));
    await grant(world, 'job-alerts', { 'alerts/token': 'alerts-value' });
    await world.server.client.putSecret(world.owner.token, 'alerts/other', 'not-granted');
    await createBinding(kube, bindingObject(namespace, 'healthy', bindingSpec(world, 'job-alerts', [{ key: 'alerts/token', env: 'TOKEN' }])));
    await createBinding(kube, bindingObject(namespace, 'broken', bindingSpec(world, 'job-alerts', [{ key: 'alerts/other', env: 'OTHER' }])));
    await waitForReady(kube, namespace, 'healthy', 'True', 'SecretsResolved');
    await waitForReady(kube, namespace, 'broken', 'False', 'AccessDenied');
    // The page a Prometheus scrape of this operator gets; the target labels are the ones Prometheus Operator adds.
    const page = await scrape(operator.metricsPort);
    const line = (binding: string) => {
      const found = page.split('\n').find((l) => l.startsWith('nosana_secrets_operator_binding_condition{') && l.includes(`binding="${binding}"`));
      if (!found) throw new Error(`the operator exports no binding_condition series for ${binding}:\n${page}`);
      return found.replace(/\} 1$/, `,${NS},job="${JOB.operator}",pod="${PREFIX}-operator-6c9f7-x2k4q"}`);
    };
    broken = line('broken');
    healthy = line('healthy');
  });
  afterAll(() => stopOperatorWorld({ kube, world, operator }));

  it('exports one series per binding with its Ready status and reason', () => {
    expect(broken).toMatch(new RegExp(`binding_namespace="${namespace}",binding="broken",condition="Ready",status="False",reason="AccessDenied"`));
    expect(healthy).toMatch(/binding="healthy",condition="Ready",status="True",reason="SecretsResolved"/);
  });

  it('fires for one binding that stays not Ready past 15 minutes, and not for a Ready one', async () => {
    const fired = {
      exp_labels: { severity: 'warning', namespace: NAMESPACE, binding_namespace: namespace, binding: 'broken' },
      exp_annotations: {
        summary: 'A NosanaSecretBinding is not Ready',
        description: `NosanaSecretBinding ${namespace}/broken has not been Ready for 15m; \`kubectl describe nsb -n ${namespace} broken\` shows the reason.`,
      },
    };
    const output = await expectRuleTests([
      {
        name: 'one broken binding among healthy ones',
        input_series: [{ series: broken, values: '1x60' }, { series: healthy, values: '1x60' }],
        alert_rule_test: [
          { eval_time: '14m', alertname: 'NosanaSecretsBindingNotReady', exp_alerts: [] },
          { eval_time: '16m', alertname: 'NosanaSecretsBindingNotReady', exp_alerts: [fired] },
        ],
      },
      {
        name: 'a binding that is fixed after 10 minutes',
        input_series: [{ series: broken, values: '1x20' }, { series: healthy.replace('binding="healthy"', 'binding="broken"'), values: '_x20 1x40' }],
        alert_rule_test: [{ eval_time: '20m', alertname: 'NosanaSecretsBindingNotReady', exp_alerts: [] }],
      },
      {
        name: 'a finished job (not Ready by design)',
        input_series: [{ series: broken.replace('reason="AccessDenied"', 'reason="JobFinished"'), values: '1x60' }],
        alert_rule_test: [{ eval_time: '30m', alertname: 'NosanaSecretsBindingNotReady', exp_alerts: [] }],
      },
    ]);
    console.info(`promtool test rules, one broken binding (${broken}):\n${output}`);
  });
});

describe('the alerts on the parts', () => {
  it('NosanaSecretsServerDown fires when no server answers or none is scraped, not while one answers', async () => {
    const up = (pod: string) => `up{${NS},job="${JOB.server}",pod="${pod}"}`;
    const down = { exp_labels: { severity: 'critical' }, exp_annotations: {
      summary: 'The Nosana secrets server is down',
      description: `No ${JOB.server} pod in ${NAMESPACE} has answered a metrics scrape for 2 minutes.`,
    } };
    await expectRuleTests([
      { name: 'both replicas fail their scrapes', input_series: [{ series: up('a'), values: '0x20' }, { series: up('b'), values: '0x20' }],
        alert_rule_test: [{ eval_time: '5m', alertname: 'NosanaSecretsServerDown', exp_alerts: [down] }] },
      { name: 'no server target at all', input_series: [{ series: `up{${NS},job="other"}`, values: '1x20' }],
        alert_rule_test: [{ eval_time: '5m', alertname: 'NosanaSecretsServerDown', exp_alerts: [{ ...down, exp_labels: { ...down.exp_labels, namespace: NAMESPACE, job: JOB.server } }] }] },
      { name: 'one of two replicas answers', input_series: [{ series: up('a'), values: '0x20' }, { series: up('b'), values: '1x20' }],
        alert_rule_test: [{ eval_time: '5m', alertname: 'NosanaSecretsServerDown', exp_alerts: [] }] },
    ]);
  });

  it('NosanaSecretsOperatorDown fires when no operator answers or none is scraped, not while one answers', async () => {
    const up = (pod: string) => `up{${NS},job="${JOB.operator}",pod="${pod}"}`;
    const annotations = {
      summary: 'The Nosana secrets operator is down',
      description: `No ${JOB.operator} pod in ${NAMESPACE} has answered a metrics scrape for 5 minutes.`,
    };
    await expectRuleTests([
      { name: 'the operator crash-loops', input_series: [{ series: up('a'), values: '0x20' }],
        alert_rule_test: [{ eval_time: '6m', alertname: 'NosanaSecretsOperatorDown', exp_alerts: [{ exp_labels: { severity: 'critical' }, exp_annotations: annotations }] }] },
      { name: 'the operator Deployment is gone', input_series: [{ series: `up{${NS},job="${JOB.server}"}`, values: '1x20' }],
        alert_rule_test: [{ eval_time: '6m', alertname: 'NosanaSecretsOperatorDown',
          exp_alerts: [{ exp_labels: { severity: 'critical', namespace: NAMESPACE, job: JOB.operator }, exp_annotations: annotations }] }] },
      { name: 'leader up, standby down', input_series: [{ series: up('a'), values: '1x20' }, { series: up('b'), values: '0x20' }],
        alert_rule_test: [{ eval_time: '6m', alertname: 'NosanaSecretsOperatorDown', exp_alerts: [] }] },
    ]);
  });

  it('NosanaSecretsInjectorDown fires for the one node whose injector is down, and when none is scraped', async () => {
    const up = (pod: string) => `up{${NS},job="${JOB.injector}",pod="${pod}"}`;
    const description = (pod: string) => `Injector ${pod} in ${NAMESPACE} has not answered a metrics scrape for 5 minutes (or none is scraped at all).`;
    await expectRuleTests([
      { name: 'one of three injectors down', input_series: [{ series: up('a'), values: '1x20' }, { series: up('b'), values: '0x20' }, { series: up('c'), values: '1x20' }],
        alert_rule_test: [{ eval_time: '6m', alertname: 'NosanaSecretsInjectorDown', exp_alerts: [{
          exp_labels: { severity: 'critical', namespace: NAMESPACE, job: JOB.injector, pod: 'b' },
          exp_annotations: { summary: 'A secrets injector is down', description: description('b') },
        }] }] },
      { name: 'no injector target at all', input_series: [{ series: `up{${NS},job="${JOB.server}"}`, values: '1x20' }],
        alert_rule_test: [{ eval_time: '6m', alertname: 'NosanaSecretsInjectorDown', exp_alerts: [{
          exp_labels: { severity: 'critical', namespace: NAMESPACE, job: JOB.injector },
          exp_annotations: { summary: 'A secrets injector is down', description: description('') },
        }] }] },
      { name: 'all injectors answer', input_series: [{ series: up('a'), values: '1x20' }, { series: up('b'), values: '1x20' }],
        alert_rule_test: [{ eval_time: '6m', alertname: 'NosanaSecretsInjectorDown', exp_alerts: [] }] },
    ]);
  });

  it('NosanaSecretsMountsFailing fires for one pod stuck in ContainerCreating (a retry every 2 minutes), not for one failure', async () => {
    const mounts = (outcome: string) => `nosana_secrets_injector_mounts_total{${NS},job="${JOB.injector}",pod="inj-a",component="injector",outcome="${outcome}"}`;
    await expectRuleTests([
      {
        // The kubelet retries the mount with a backoff that reaches about 2 minutes: one failure every 4 samples.
        name: 'one pod whose key is not granted',
        input_series: [{ series: mounts('KeyNotGranted'), values: counterValues(80, 4, 4) }, { series: mounts('success'), values: counterValues(80, 2) }],
        alert_rule_test: [
          { eval_time: '12m', alertname: 'NosanaSecretsMountsFailing', exp_alerts: [] },
          { eval_time: '30m', alertname: 'NosanaSecretsMountsFailing', exp_alerts: [{
            exp_labels: { severity: 'warning', namespace: NAMESPACE, pod: 'inj-a' },
            exp_annotations: {
              summary: 'Secret volume mounts keep failing',
              description: 'Injector inj-a has failed mounts in every 10 minutes for 15m (about 5 in the last 10); see its logs for the pod and the reason.',
            },
          }] },
        ],
      },
      {
        name: 'one failure, then only successes',
        input_series: [{ series: mounts('ServerUnreachable'), values: `_x9 ${'1 '.repeat(70).trim()}` }, { series: mounts('success'), values: counterValues(80, 2) }],
        alert_rule_test: [{ eval_time: '30m', alertname: 'NosanaSecretsMountsFailing', exp_alerts: [] }],
      },
    ]);
  });

  it('NosanaSecretsOperatorNoLeader fires when replicas run but none leads, not while one leads', async () => {
    const leader = (pod: string) => `nosana_secrets_operator_leader{${NS},job="${JOB.operator}",pod="${pod}",component="operator"}`;
    await expectRuleTests([
      { name: 'two replicas, no leader', input_series: [{ series: leader('a'), values: '0x20' }, { series: leader('b'), values: '0x20' }],
        alert_rule_test: [{ eval_time: '6m', alertname: 'NosanaSecretsOperatorNoLeader', exp_alerts: [{
          exp_labels: { severity: 'warning', namespace: NAMESPACE },
          exp_annotations: { summary: 'No operator replica is the leader',
            description: `No operator replica in ${NAMESPACE} holds the leader Lease, so no NosanaSecretBinding is reconciled.` },
        }] }] },
      { name: 'one leader, one standby', input_series: [{ series: leader('a'), values: '1x20' }, { series: leader('b'), values: '0x20' }],
        alert_rule_test: [{ eval_time: '6m', alertname: 'NosanaSecretsOperatorNoLeader', exp_alerts: [] }] },
    ]);
  });

  it('NosanaSecretsStorageDown fires when the server cannot reach its database, not while it can', async () => {
    const storage = `nosana_secrets_storage_up{${NS},job="${JOB.server}",pod="srv-a",component="server",backend="postgresql"}`;
    await expectRuleTests([
      { name: 'database unreachable', input_series: [{ series: storage, values: '0x20' }],
        alert_rule_test: [{ eval_time: '3m', alertname: 'NosanaSecretsStorageDown', exp_alerts: [{
          exp_labels: { severity: 'critical', namespace: NAMESPACE, pod: 'srv-a', backend: 'postgresql' },
          exp_annotations: { summary: 'The secrets server cannot reach its storage', description: 'Pod srv-a reports its postgresql storage unreachable.' },
        }] }] },
      { name: 'database reachable', input_series: [{ series: storage, values: '1x20' }],
        alert_rule_test: [{ eval_time: '3m', alertname: 'NosanaSecretsStorageDown', exp_alerts: [] }] },
    ]);
  });

  it('NosanaSecretsServerErrors fires above 5% of requests answered 5xx, not at 1.6%', async () => {
    const requests = (status: string) => `nosana_secrets_http_requests_total{${NS},job="${JOB.server}",pod="srv-a",component="server",method="GET",route="/v1/secrets/*",status="${status}"}`;
    await expectRuleTests([
      // Per 30 s: 30 answered 200 and 3 answered 500 (9%).
      { name: '9% errors', input_series: [{ series: requests('200'), values: '0+30x60' }, { series: requests('500'), values: '0+3x60' }],
        alert_rule_test: [{ eval_time: '20m', alertname: 'NosanaSecretsServerErrors', exp_alerts: [{
          exp_labels: { severity: 'warning' },
          exp_annotations: { summary: 'More than 5% of secrets API requests fail with a server error', description: '9.091% of requests answered 5xx over 5 minutes.' },
        }] }] },
      { name: '1.6% errors', input_series: [{ series: requests('200'), values: '0+60x60' }, { series: requests('500'), values: '0+1x60' }],
        alert_rule_test: [{ eval_time: '20m', alertname: 'NosanaSecretsServerErrors', exp_alerts: [] }] },
    ]);
  });

  it('NosanaSecretsFailedLoginSpike fires at 2 failed logins per second, not at 0.1', async () => {
    const logins = `nosana_secrets_logins_total{${NS},job="${JOB.server}",pod="srv-a",component="server",scope="owner",outcome="bad_signature"}`;
    await expectRuleTests([
      { name: '2 failed logins per second', input_series: [{ series: logins, values: '0+60x40' }],
        alert_rule_test: [{ eval_time: '12m', alertname: 'NosanaSecretsFailedLoginSpike', exp_alerts: [{
          exp_labels: { severity: 'warning', namespace: NAMESPACE, scope: 'owner' },
          exp_annotations: { summary: 'Failed logins to the secrets server are spiking', description: '2 failed owner logins per second over 5 minutes.' },
        }] }] },
      { name: '0.1 failed logins per second', input_series: [{ series: logins, values: '0+3x40' }],
        alert_rule_test: [{ eval_time: '12m', alertname: 'NosanaSecretsFailedLoginSpike', exp_alerts: [] }] },
    ]);
  });
});

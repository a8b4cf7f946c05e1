// Finds the metric names a PromQL expression reads, and the names a /metrics page exports, so the dashboard and the
// alert rules can be checked against what the processes really serve.

const KEYWORDS = new Set([
  'by', 'without', 'on', 'ignoring', 'group_left', 'group_right', 'bool', 'offset', 'and', 'or', 'unless', 'inf', 'nan',
]);

/** Metric names used in a PromQL expression (or a Grafana `label_values(metric, label)` query). */
export function metricNamesIn(expression: string): Set<string> {
  const names = new Set<string>();
  // Grafana's label_values(metric{...}, label): only the first argument is a metric.
  const labelValues = /^\s*label_values\(\s*([a-zA-Z_:][\w:]*)\s*[{,]/.exec(expression);
  if (labelValues) return new Set([labelValues[1]!]);
  const stripped = expression
    .replace(/"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|`[^`]*`/g, '""') // strings: label values, regexes
    .replace(/\{[^}]*\}/g, ' ') // label matchers
    .replace(/\[[^\]]*\]/g, ' ') // range and subquery durations
    .replace(/\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)/g, ' ') // label lists
    .replace(/\$\{?\w+\}?/g, ' '); // Grafana variables such as $__rate_interval
  for (const match of stripped.matchAll(/[a-zA-Z_:][\w:]*/g)) {
    const word = match[0];
    const after = stripped.slice(match.index + word.length).trimStart();
    if (after.startsWith('(')) continue; // a function or aggregation
    if (KEYWORDS.has(word.toLowerCase())) continue;
    if (/^\d/.test(word)) continue;
    names.add(word);
  }
  return names;
}

/**
 * The series names a Prometheus text page offers, from its `# TYPE` lines, so a metric counts even before its first
 * observation: a histogram `x` offers `x_bucket`, `x_sum` and `x_count`.
 */
export function exportedNames(page: string): Set<string> {
  const names = new Set<string>();
  for (const match of page.matchAll(/^# TYPE (\S+) (\S+)$/gm)) {
    const [, name, type] = match as unknown as [string, string, string];
    if (type === 'histogram') for (const suffix of ['_bucket', '_sum', '_count']) names.add(name + suffix);
    else if (type === 'summary') for (const suffix of ['', '_sum', '_count']) names.add(name + suffix);
    else names.add(name);
  }
  return names;
}

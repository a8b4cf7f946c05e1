import { describe, expect, it } from 'vitest';
import { auditLogger } from '../../common/log.js';
import { captureLogs } from '../helpers/logs.js';

describe('the audit logger', () => {
  it('writes every name it is given, and redacts a top-level field named like secret material', () => {
    const { logs, logger } = captureLogs();
    auditLogger(logger).info({ event: 'read', address: 'A', job: 'j', keys: ['K1', 'K2'], value: 'leaked-value', token: 'leaked-token' }, 'read');
    expect(logs).toHaveLength(1);
    const line = JSON.parse(logs[0]!);
    expect(line).toMatchObject({ audit: true, event: 'read', address: 'A', job: 'j', keys: ['K1', 'K2'], value: '[redacted]', token: '[redacted]' });
    expect(logs[0]).not.toContain('leaked');
  });
});

import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // The node's tests (pods really run) need a control plane of their own: test/run-node runs them.
    exclude: process.env.NS_TEST_NODE ? [] : ['test/node/**'],
    globalSetup: ['test/helpers/global-setup.ts'],
    testTimeout: 30_000,
    hookTimeout: 180_000,
    pool: 'forks',
    // Tests talk to shared real servers; each file uses its own database, namespace or port.
    fileParallelism: true,
    maxWorkers: 2,
  },
});

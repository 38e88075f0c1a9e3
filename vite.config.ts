import { defineConfig } from 'vitest/config';

// Vitest runs every suite under test/. Suites start real servers on loopback
// ports, so files run in separate processes and get generous timeouts.
export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    pool: 'forks',
    testTimeout: 60_000,
    hookTimeout: 60_000,
    reporters: ['default'],
  },
});

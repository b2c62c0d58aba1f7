import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // The run's id for test key prefixes and database names; at the end, fails the run on state a test left behind.
    globalSetup: ['test/global-setup.ts'],
    // Hooks every test file needs (stopping the servers a test spawned), registered anew for each file.
    setupFiles: ['test/support/after-each-test.ts'],
    testTimeout: 30_000,
    // Hooks start services (databases, migrations, servers): a busy machine needs room; a bound only ends a hang.
    hookTimeout: 120_000,
    // Two cores: keep worker count small so tests that start servers do not starve each other.
    maxWorkers: 2,
    // Test files share a worker's loaded modules: importing src/ and its dependencies (PGlite, Stripe, OpenTelemetry) for
    // every file was a third of the suite's CPU. Tests keep no state in modules (each builds its own app, metrics, stores).
    isolate: false,
    // Worker threads rather than processes: cheaper to start and to message on two cores; tests that need a process
    // of their own (signals, exit codes) spawn `tollgate serve`.
    pool: 'threads',
  },
});

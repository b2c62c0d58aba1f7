import { relative } from 'node:path';
import { defineConfig } from 'vitest/config';
import { BaseSequencer, type TestSpecification } from 'vitest/node';

/**
 * The longest test files (20-30 s each on two cores), started first. Vitest orders by the durations it cached, but a
 * fresh clone (CI) has none and it orders by file size: a long, short file started last ran on alone for half a
 * minute at the end of the run.
 */
const longestFirst = ['test/no-stall.test.ts', 'test/shutdown.test.ts', 'test/stripe-sync.test.ts', 'test/identity-on-demand.test.ts', 'test/start-guards.test.ts'];

class LongestFirst extends BaseSequencer {
  override async sort(files: TestSpecification[]): Promise<TestSpecification[]> {
    const rank = (file: TestSpecification) => {
      const at = longestFirst.indexOf(relative(process.cwd(), file.moduleId));
      return at === -1 ? longestFirst.length : at;
    };
    return (await super.sort(files)).sort((a, b) => rank(a) - rank(b));
  }
}

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
    sequence: { sequencer: LongestFirst },
  },
});

import type { PostgresServer } from './processes.js';

/** What every scenario gets from the harness. */
export interface ScenarioContext {
  /** Shortened durations and counts, for developing the harness; the figures are not the ones to publish. */
  quick: boolean;
  /** The harness's own PostgreSQL server; each Tollgate server gets a fresh database on it. */
  postgres: PostgresServer;
  /** A fresh temporary directory (TOLLGATE_DATA_DIR), removed when the harness ends. */
  dataDir(): string;
  /** Prints a figure as it is measured. */
  log(line: string): void;
}

/** A scenario's figures, as the harness writes them into docs/RELIABILITY.md. */
export interface ScenarioResult {
  title: string;
  /** How the figures were made, in a paragraph. */
  description: string;
  table: { head: string[]; rows: string[][] };
  /** Real defects the scenario found (a 500, a crash, lost or doubled usage…), each with its reproduction. */
  findings: string[];
}

/** One port over PostgreSQL (`pg`) and PGlite: the same SQL and migrations run on both. */
export interface Queryable {
  query<Row = Record<string, unknown>>(sql: string, params?: unknown[]): Promise<Row[]>;
}

export interface Db extends Queryable {
  readonly kind: 'postgres' | 'pglite';
  /** Runs fn in one transaction on one connection; rolls back if it throws. */
  transaction<T>(fn: (tx: Queryable) => Promise<T>): Promise<T>;
  /** Runs fn holding a session-level advisory lock, or returns undefined at once if another holder has it. */
  withAdvisoryLock<T>(lockId: number, fn: (tx: Queryable) => Promise<T>): Promise<T | undefined>;
  close(): Promise<void>;
}

/** int8 and numeric arrive as strings from both drivers: amounts never pass through a float. */
export const int8Oid = 20;
export const numericOid = 1700;

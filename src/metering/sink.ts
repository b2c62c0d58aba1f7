import pg from 'pg';
import type { Logger } from '../kernel/index.js';
import type { Db } from '../store/index.js';
import { createStagingTableSql, decodeCopyRow, insertStagedEventsSql, stagingColumnNames, type InsertStatements } from './event-rows.js';

/** Where flushed usage events go: PostgreSQL through COPY, or any Db (PGlite) through a JSON parameter. */
export interface UsageSink {
  /**
   * Stores rows (COPY text format, newline-ended) and their rollups in one transaction, skipping usage ids
   * already stored. Returns how many were new.
   */
  write(chunks: readonly Buffer[]): Promise<number>;
  close(): Promise<void>;
}

export interface SinkOptions {
  /** Also queue each new event in the event outbox, in the same statement (events on: src/events). */
  queueEvents: boolean;
}

/** temp_buffers and work_mem of the writer's session: a 50,000-event batch stages in about 16 MB. */
const sessionMemory = '64MB';
/**
 * After a batch held an already stored usage id, this many writes skip duplicates from the start: where duplicates
 * are common (a request logged by two proxies), the cheap attempt would mostly be wasted.
 */
const checkedWritesAfterDuplicate = 20;

/**
 * The production writer: its own connection, so bulk COPY neither waits for nor starves the admin pool, and so
 * its session-local staging table lives as long as the connection. Five round trips per flush (four while skipping
 * duplicates from the start, seven when falling back).
 * Duplicates are rare (a replayed spool segment, a request logged twice), so a batch is first inserted as if it had
 * none; if it has, that attempt is rolled back to a savepoint and the batch goes in skipping them.
 */
export class PostgresUsageSink implements UsageSink {
  private current: { client: pg.Client; ready: Promise<void> } | undefined;
  private checkedWritesLeft = 0;
  private readonly statements: InsertStatements;

  constructor(
    private readonly url: string,
    private readonly logger: Logger,
    options: SinkOptions = { queueEvents: false },
  ) {
    this.statements = insertStagedEventsSql(options.queueEvents);
  }

  async write(chunks: readonly Buffer[]): Promise<number> {
    const client = await this.connection();
    try {
      await client.query('BEGIN');
      await copyFromStdin(client, 'COPY usage_staging FROM STDIN', chunks);
      const inserted = await this.insertStaged(client);
      await client.query('COMMIT');
      return inserted;
    } catch (error) {
      // After a data error the rolled-back connection is fine; a broken one is replaced on the next write.
      await client.query('ROLLBACK').catch(() => this.discard(client));
      throw error;
    }
  }

  async close(): Promise<void> {
    if (this.current) this.discard(this.current.client);
  }

  private async insertStaged(client: pg.Client): Promise<number> {
    const insert = async (sql: string) => (await client.query<{ inserted: number }>(sql)).rows[0]!.inserted;
    if (this.checkedWritesLeft > 0) {
      this.checkedWritesLeft--;
      return insert(this.statements.skippingDuplicates);
    }
    await client.query('SAVEPOINT assuming_no_duplicates');
    try {
      return await insert(this.statements.failingOnDuplicate);
    } catch (error) {
      if (!isDuplicateEvent(error)) throw error;
      this.checkedWritesLeft = checkedWritesAfterDuplicate;
      await client.query('ROLLBACK TO SAVEPOINT assuming_no_duplicates');
      return insert(this.statements.skippingDuplicates);
    }
  }

  private async connection(): Promise<pg.Client> {
    if (!this.current) {
      const client = new pg.Client({ connectionString: this.url, connectionTimeoutMillis: 5_000, query_timeout: 60_000 });
      client.on('error', (error) => {
        this.logger.warn({ err: error.message }, 'usage writer connection lost');
        this.discard(client);
      });
      const ready = client
        .connect()
        // This connection only writes usage batches: room for a whole batch in the session's temp buffers (staging
        // table) and in work_mem (the inserted rows the rollups read, their sorts), instead of spilling to temp files.
        .then(() => client.query(`SET temp_buffers = '${sessionMemory}'; SET work_mem = '${sessionMemory}'`))
        .then(() => client.query(createStagingTableSql))
        .then(() => undefined);
      this.current = { client, ready };
    }
    const { client, ready } = this.current;
    try {
      await ready;
    } catch (error) {
      this.discard(client);
      throw error;
    }
    return client;
  }

  private discard(client: pg.Client): void {
    if (this.current?.client === client) this.current = undefined;
    client.end().catch(() => {});
  }
}

/** Any Db, e.g. embedded PGlite: rows travel as one JSON parameter into the same staging table and statement. */
export class DbUsageSink implements UsageSink {
  private readonly insertSql: string;

  constructor(
    private readonly db: Db,
    options: SinkOptions = { queueEvents: false },
  ) {
    this.insertSql = insertStagedEventsSql(options.queueEvents).skippingDuplicates;
  }

  async write(chunks: readonly Buffer[]): Promise<number> {
    const rows = Buffer.concat(chunks).toString('utf8').split('\n');
    rows.pop();
    const records = rows.map((row) => Object.fromEntries(decodeCopyRow(row).map((value, i) => [stagingColumnNames[i], value])));
    return this.db.transaction(async (tx) => {
      await tx.query(createStagingTableSql);
      await tx.query('INSERT INTO usage_staging SELECT * FROM json_populate_recordset(null::usage_staging, $1::json)', [JSON.stringify(records)]);
      const [result] = await tx.query<{ inserted: number }>(this.insertSql);
      return result!.inserted;
    });
  }

  async close(): Promise<void> {}
}

/** A unique violation on usage_events: every other insert of the statement has its own ON CONFLICT clause. */
function isDuplicateEvent(error: unknown): boolean {
  const { code, table } = error as { code?: unknown; table?: unknown };
  return code === '23505' && table === 'usage_events';
}

/** What CopyFromStdin uses of pg's connection: its socket, and the message ending the copy. */
interface CopyConnection {
  stream: { writable: boolean; cork(): void; uncork(): void; write(bytes: Buffer): boolean };
  endCopyFrom(): void;
}

/** The CopyData message's type byte ('d'); its 4-byte length (itself included) follows, then the data. */
const copyDataType = 0x64;

/**
 * pg's query API has no COPY FROM STDIN; like pg-copy-streams, this plugs into the hook pg calls when the server
 * asks for copy data, and sends the rows as they are: each chunk as one CopyData message, its 5-byte header written
 * before it, all in one corked write (pg's own sendCopyFromChunk copies every chunk into a new message first).
 */
class CopyFromStdin extends pg.Query {
  constructor(
    sql: string,
    private readonly chunks: readonly Buffer[],
    // A callback, not events: with query_timeout set, pg reports a lost connection only to the callback.
    done: (error: Error | undefined) => void,
  ) {
    super(sql, (error) => done(error ?? undefined));
  }

  handleCopyInResponse(connection: CopyConnection): void {
    const socket = connection.stream;
    // A closed connection: pg reports it to the query (as its own writes would find it).
    if (!socket.writable) return;
    const headers = Buffer.allocUnsafe(5 * this.chunks.length);
    socket.cork();
    this.chunks.forEach((chunk, i) => {
      const header = headers.subarray(5 * i, 5 * i + 5);
      header[0] = copyDataType;
      header.writeInt32BE(chunk.length + 4, 1);
      socket.write(header);
      socket.write(chunk);
    });
    connection.endCopyFrom();
    socket.uncork();
  }
}

function copyFromStdin(client: pg.Client, sql: string, chunks: readonly Buffer[]): Promise<void> {
  return new Promise((resolve, reject) => {
    client.query(new CopyFromStdin(sql, chunks, (error) => (error ? reject(error) : resolve())));
  });
}

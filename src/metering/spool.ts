import {
  close,
  closeSync,
  fdatasync,
  fdatasyncSync,
  fsync,
  fsyncSync,
  mkdirSync,
  open,
  openSync,
  readdirSync,
  readFileSync,
  statSync,
  unlinkSync,
  writeSync,
} from 'node:fs';
import { randomBytes } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { promisify } from 'node:util';
import type { Logger } from '../kernel/index.js';

/**
 * The durable spool between Envoy's access-log stream and PostgreSQL: append-only segment files of newline-ended
 * rows. A row is written to its segment before the meter counts it as received; segments are fsynced by a job every
 * TOLLGATE_SPOOL_FSYNC_MS (syncWritten, src/app.ts) and deleted only once their rows are committed.
 *
 * Durability: a killed process (even SIGKILL) loses nothing already appended, since the data is in the kernel's
 * page cache; a machine crash or power loss loses at most the last fsync interval. A torn last row is dropped when
 * the segment is read back.
 *
 * One process owns a spool directory, as it owns its PGlite data directory.
 */

export interface SpoolOptions {
  dir: string;
  /** Rows of sealed segments held in memory; past it, the newest are dropped and read back from disk when flushed. */
  maxBufferedBytes: number;
  /** A row read back from disk in the current layout (brought up to date if older); undefined if torn or foreign. */
  currentRow: (row: string) => string | undefined;
  logger: Logger;
}

export interface Segment {
  readonly seq: number;
  readonly file: string;
  events: number;
  bytes: number;
  /** When its first row was appended (file mtime for segments found at start), for the lag gauge. */
  readonly since: number;
  /** Its rows, while held in memory. */
  chunks: Buffer[] | undefined;
  fd: number | undefined;
  /** Written since the last fsync. */
  dirty: boolean;
  sync: Promise<void> | undefined;
  sealed: boolean;
}

export interface SegmentRows {
  chunks: Buffer[];
  events: number;
}

/**
 * The row layout version is part of the name, so a future layout never replays rows it cannot read. Additions that
 * older rows can be brought up to (SpoolOptions.currentRow) keep the name: v1 rows from before usage ids are read.
 */
const segmentName = (seq: number) => `usage-v1-${String(seq).padStart(12, '0')}.copy`;
const segmentPattern = /^usage-v1-(\d{12})\.copy$/;
const fdatasyncAsync = promisify(fdatasync);

export class Spool {
  /** Pending segments, oldest first; the active one, if any, is last. */
  private readonly segments: Segment[] = [];
  private active: Segment | undefined;
  private nextSeq: number;
  private bufferedBytes = 0;
  private totalEvents = 0;
  private totalBytes = 0;
  private directoryDirty = false;
  private closed = false;

  /** Opens the directory and picks up the segments a previous process left, to be replayed first. */
  constructor(private readonly options: SpoolOptions) {
    mkdirSync(options.dir, { recursive: true });
    const found = readdirSync(options.dir)
      .map((name) => ({ name, match: segmentPattern.exec(name) }))
      .filter((entry) => entry.match)
      .map((entry) => ({ file: join(options.dir, entry.name), seq: Number(entry.match![1]) }))
      .sort((a, b) => a.seq - b.seq);
    for (const { file, seq } of found) {
      const rows = this.validRows(readFileSync(file), file);
      if (rows.events === 0) {
        unlinkSync(file);
        continue;
      }
      const bytes = rows.chunks[0]!.length;
      const keep = this.bufferedBytes + bytes <= options.maxBufferedBytes;
      this.segments.push({
        seq,
        file,
        events: rows.events,
        bytes,
        since: statSync(file).mtimeMs,
        chunks: keep ? rows.chunks : undefined,
        fd: undefined,
        dirty: false,
        sync: undefined,
        sealed: true,
      });
      if (keep) this.bufferedBytes += bytes;
      this.totalEvents += rows.events;
      this.totalBytes += bytes;
    }
    this.nextSeq = (found.at(-1)?.seq ?? 0) + 1;
    if (this.totalEvents > 0) options.logger.info({ segments: this.segments.length, events: this.totalEvents }, 'spool has events to replay');
  }

  /** Events appended and not yet committed. */
  get pendingEvents(): number {
    return this.totalEvents;
  }

  get pendingBytes(): number {
    return this.totalBytes;
  }

  /** Events in the segment still being appended to. */
  get activeEvents(): number {
    return this.active?.events ?? 0;
  }

  /** Seconds since the oldest pending event was appended; 0 when nothing is pending. */
  lagSeconds(now = Date.now()): number {
    const oldest = this.segments[0];
    return oldest ? Math.max(0, (now - oldest.since) / 1000) : 0;
  }

  /** Appends newline-ended rows (kept, not copied); once this returns they survive the process. Throws if the write fails. */
  append(buffer: Buffer, events: number): void {
    if (this.closed) throw new Error('the spool is closed');
    const segment = this.active ?? this.startSegment();
    try {
      for (let written = 0; written < buffer.length; ) written += writeSync(segment.fd!, buffer, written);
    } catch (error) {
      // A partial row may now end the file: append nothing after it (reading it back drops the torn row).
      this.seal();
      throw error;
    }
    segment.chunks!.push(buffer);
    segment.events += events;
    segment.bytes += buffer.length;
    segment.dirty = true;
    this.bufferedBytes += buffer.length;
    this.totalEvents += events;
    this.totalBytes += buffer.length;
  }

  /** Ends the active segment, making it flushable; later rows start a new one. */
  seal(): void {
    const segment = this.active;
    if (!segment) return;
    this.active = undefined;
    segment.sealed = true;
    if (segment.events === 0) {
      this.forget(segment);
      unlinkSync(segment.file);
    }
    this.evictOverBudget();
  }

  /** Sealed segments, oldest first. */
  sealedSegments(): readonly Segment[] {
    return this.active ? this.segments.slice(0, -1) : this.segments;
  }

  /** A sealed segment's rows, from memory or read back from disk. */
  async read(segment: Segment): Promise<SegmentRows> {
    if (segment.chunks) return { chunks: segment.chunks, events: segment.events };
    return this.validRows(await readFile(segment.file), segment.file);
  }

  /** Deletes segments whose rows are committed. */
  remove(segments: readonly Segment[]): void {
    for (const segment of segments) {
      this.forget(segment);
      unlinkSync(segment.file);
    }
  }

  /**
   * Ends a segment whose other rows are committed: `rows`, the ones PostgreSQL refused, are kept in a new file under
   * rejected/ (COPY text rows, as in the spool) for an operator to look at; returns that file, if any.
   */
  setAside(segment: Segment, rows: readonly Buffer[]): string | undefined {
    let file: string | undefined;
    if (rows.length > 0) {
      const rejectedDir = join(this.options.dir, 'rejected');
      mkdirSync(rejectedDir, { recursive: true });
      // Segment numbers start again with each process: a fresh name never replaces what an earlier one set aside.
      file = join(rejectedDir, `${basename(segment.file, '.copy')}-${Date.now()}-${randomBytes(4).toString('hex')}.copy`);
      const fd = openSync(file, 'wx');
      try {
        for (const row of rows) writeSync(fd, row);
        fdatasyncSync(fd);
      } finally {
        closeSync(fd);
      }
    }
    this.remove([segment]);
    return file;
  }

  /** Seals, waits for in-flight fsyncs and fsyncs the rest: what is left is replayed by the next process. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.seal();
    this.closed = true;
    await Promise.all(this.segments.map((segment) => segment.sync));
    for (const segment of this.segments) {
      if (segment.fd === undefined) continue;
      if (segment.dirty) fdatasyncSync(segment.fd);
      closeSync(segment.fd);
      segment.fd = undefined;
    }
    const directory = openSync(this.options.dir, 'r');
    fsyncSync(directory);
    closeSync(directory);
  }

  private startSegment(): Segment {
    const seq = this.nextSeq++;
    const file = join(this.options.dir, segmentName(seq));
    const segment: Segment = {
      seq,
      file,
      events: 0,
      bytes: 0,
      since: Date.now(),
      chunks: [],
      fd: openSync(file, 'a'),
      dirty: false,
      sync: undefined,
      sealed: false,
    };
    this.segments.push(segment);
    this.active = segment;
    this.directoryDirty = true;
    return segment;
  }

  private forget(segment: Segment): void {
    const index = this.segments.indexOf(segment);
    if (index === -1) return;
    this.segments.splice(index, 1);
    if (segment.chunks) this.bufferedBytes -= segment.bytes;
    segment.chunks = undefined;
    this.totalEvents -= segment.events;
    this.totalBytes -= segment.bytes;
    // Its rows are committed or set aside: no fsync is owed any more, only the descriptor to close.
    segment.dirty = false;
    this.closeWhenSynced(segment);
  }

  private evictOverBudget(): void {
    const sealed = this.sealedSegments();
    for (let i = sealed.length - 1; i >= 0 && this.bufferedBytes > this.options.maxBufferedBytes; i--) {
      const segment = sealed[i]!;
      if (!segment.chunks) continue;
      segment.chunks = undefined;
      this.bufferedBytes -= segment.bytes;
    }
  }

  /** The fsync job's pass (src/app.ts): starts an fsync of every segment written since its last one. */
  syncWritten(): void {
    if (this.closed) return;
    for (const segment of this.segments) {
      if (segment.fd === undefined || segment.sync) continue;
      if (!segment.dirty) {
        this.closeWhenSynced(segment);
        continue;
      }
      segment.dirty = false;
      segment.sync = fdatasyncAsync(segment.fd)
        .catch((error: Error) => {
          segment.dirty = true;
          this.options.logger.error({ err: error.message, file: segment.file }, 'spool fsync failed');
        })
        .finally(() => {
          segment.sync = undefined;
          this.closeWhenSynced(segment);
        });
    }
    if (this.directoryDirty) this.syncDirectory();
  }

  /** Sealed segments keep their descriptor only until their last fsync is done. */
  private closeWhenSynced(segment: Segment): void {
    if (!segment.sealed || segment.dirty || segment.sync || segment.fd === undefined) return;
    close(segment.fd, () => {});
    segment.fd = undefined;
  }

  /** New segment files survive a machine crash only once their directory entry is synced. */
  private syncDirectory(): void {
    this.directoryDirty = false;
    const failed = (error: Error) => {
      this.directoryDirty = true;
      this.options.logger.error({ err: error.message, dir: this.options.dir }, 'spool directory fsync failed');
    };
    open(this.options.dir, 'r', (openError, fd) => {
      if (openError) return failed(openError);
      fsync(fd, (error) => {
        if (error) failed(error);
        close(fd, () => {});
      });
    });
  }

  private validRows(content: Buffer, file: string): SegmentRows {
    const lines = content.toString('utf8').split('\n');
    const torn = lines.pop() !== '';
    const valid: string[] = [];
    let upgraded = false;
    for (const line of lines) {
      const row = this.options.currentRow(line);
      if (row === undefined) continue;
      if (row !== line) upgraded = true;
      valid.push(row);
    }
    const dropped = lines.length - valid.length + (torn ? 1 : 0);
    if (dropped > 0) this.options.logger.warn({ file, dropped }, 'spool segment had incomplete rows; dropped them');
    if (dropped === 0 && !upgraded) return { chunks: [content], events: valid.length };
    return { chunks: [Buffer.from(valid.map((row) => `${row}\n`).join(''))], events: valid.length };
  }
}

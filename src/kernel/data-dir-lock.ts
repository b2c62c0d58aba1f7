import { randomBytes } from 'node:crypto';
import { linkSync, readFileSync, unlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

export const lockFileName = 'tollgate.lock';

/** The data directory is held by another live process. */
export class DataDirLockedError extends Error {
  constructor(
    readonly dataDir: string,
    readonly holderPid: number,
  ) {
    super(
      `data directory ${dataDir} is in use by another Tollgate process (PID ${holderPid}); ` +
        `stop it, or give this one its own TOLLGATE_DATA_DIR (lock file ${join(dataDir, lockFileName)})`,
    );
    this.name = 'DataDirLockedError';
  }
}

interface Holder {
  pid: number;
  /** When the process started (Linux: clock ticks since boot), to tell a live holder from a new process given its PID. */
  started: string | null;
}

export interface DataDirLock {
  release(): void;
}

/**
 * Takes the data directory for this process: two servers on one directory would each see only their own writes to
 * the embedded database and lose the other's. The lock file is created whole (written aside, then hard-linked in,
 * which fails if it exists); a lock left by a process that is gone is taken over.
 */
export function lockDataDir(dataDir: string): DataDirLock {
  const file = join(dataDir, lockFileName);
  const self: Holder = { pid: process.pid, started: startTimeOf(process.pid) };
  const content = `${JSON.stringify(self)}\n`;
  const draft = join(dataDir, `${lockFileName}.${process.pid}.${randomBytes(4).toString('hex')}`);
  writeFileSync(draft, content, { mode: 0o644 });
  try {
    for (let attempt = 0; ; attempt++) {
      try {
        linkSync(draft, file);
        break;
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code !== 'EEXIST' || attempt >= 2) throw error;
      }
      const holder = readHolder(file);
      if (holder && isAlive(holder)) throw new DataDirLockedError(dataDir, holder.pid);
      unlinkSync(file);
    }
  } finally {
    unlinkSync(draft);
  }
  return {
    release() {
      try {
        if (readFileSync(file, 'utf8') === content) unlinkSync(file);
      } catch {
        // Already gone (e.g. the directory was removed): nothing to release.
      }
    },
  };
}

function readHolder(file: string): Holder | undefined {
  try {
    const holder = JSON.parse(readFileSync(file, 'utf8')) as Holder;
    return Number.isInteger(holder.pid) && holder.pid > 0 ? holder : undefined;
  } catch {
    // Unreadable or not ours: the file is always written whole, so this is no live holder's lock.
    return undefined;
  }
}

function isAlive(holder: Holder): boolean {
  try {
    process.kill(holder.pid, 0);
  } catch (error) {
    // EPERM: alive, under another user.
    if ((error as NodeJS.ErrnoException).code === 'ESRCH') return false;
  }
  // A PID is reused (in a container every restart may be PID 1): the same PID with another start time is not the holder.
  const started = startTimeOf(holder.pid);
  return holder.started === null || started === null || started === holder.started;
}

/** The process's start time from /proc (field 22 of stat), or null where there is no /proc. */
function startTimeOf(pid: number): string | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // The command name (field 2) may hold spaces and parentheses; the fields after it follow its last ')'.
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19] ?? null;
  } catch {
    return null;
  }
}

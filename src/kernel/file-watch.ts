import { createHash } from 'node:crypto';
import { readFileSync, watch, type FSWatcher } from 'node:fs';
import { dirname } from 'node:path';
import type { Scheduler } from './scheduler.js';

/** How often the files are compared when no watch event came: Kubernetes' Secret updates take longer anyway. */
export const filePollMs = 10_000;

/**
 * Calls `changed` when the content of any of the files changes: for secrets mounted as files (TLS certificates,
 * tokens) that are rotated in place. Kubernetes swaps a Secret's files by renaming a directory, which a watch on the
 * file itself misses, so the directories are watched, and a poll (a scheduler job named `name`) catches whatever the
 * watches miss.
 */
export function watchFiles(name: string, files: readonly string[], changed: () => void, scheduler: Scheduler): { close(): void } {
  let fingerprint = contentFingerprint(files);
  const check = () => {
    const next = contentFingerprint(files);
    if (next === fingerprint) return;
    fingerprint = next;
    changed();
  };
  const watchers: FSWatcher[] = [];
  for (const directory of new Set(files.map((file) => dirname(file)))) {
    try {
      const watcher = watch(directory, check);
      watcher.on('error', () => {});
      watchers.push(watcher);
    } catch {
      // The poll still notices.
    }
  }
  const poll = scheduler.every(name, filePollMs, async () => check());
  return {
    close() {
      void poll.stop();
      for (const watcher of watchers) watcher.close();
    },
  };
}

function contentFingerprint(files: readonly string[]): string {
  const hash = createHash('sha256');
  for (const file of files) {
    try {
      hash.update(readFileSync(file));
    } catch {
      hash.update(`missing:${file}`);
    }
  }
  return hash.digest('hex');
}

import type { Logger } from './logger.js';

/**
 * Runs one step of a stop, waiting for it until `deadline` (epoch ms) at most: a step that fails or outlives the
 * deadline is logged and left behind, so the steps after it still run and the stop ends. Whether it ended in time.
 */
export async function stepWithin(name: string, deadline: number, work: () => unknown, logger: Logger): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<'late'>((resolve) => (timer = setTimeout(resolve, Math.max(0, deadline - Date.now()), 'late')));
  try {
    const outcome = await Promise.race([Promise.resolve().then(work), late]);
    if (outcome !== 'late') return true;
    logger.error({ step: name }, 'stop step did not end in time; going on without it');
  } catch (error) {
    logger.error({ step: name, err: error instanceof Error ? error.message : String(error) }, 'stop step failed; going on');
  } finally {
    clearTimeout(timer);
  }
  return false;
}

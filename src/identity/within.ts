/** `reply`, or a rejection with `failure()` once `ms` have passed (the reply itself is not cancelled). */
export function within<T>(reply: Promise<T>, ms: number, failure: () => Error): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(failure()), ms);
  });
  return Promise.race([reply, late]).finally(() => clearTimeout(timer));
}

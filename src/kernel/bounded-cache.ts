/**
 * A map holding at most `capacity` entries, evicting the least recently used half at a time: two generations, the
 * young one taking new and recently read entries; when it is full it becomes the old one and the old one is dropped.
 * A hit in the young generation is one Map lookup (nothing moves), so the Check's cache hit stays as cheap as a plain
 * Map's; a hit in the old generation moves the entry to the young one.
 */
export class BoundedCache<Value> {
  private young = new Map<string, Value>();
  private old = new Map<string, Value>();
  private readonly generationSize: number;

  constructor(capacity: number) {
    this.generationSize = Math.max(1, Math.floor(capacity / 2));
  }

  get(key: string): Value | undefined {
    const value = this.young.get(key);
    if (value !== undefined) return value;
    const aging = this.old.get(key);
    if (aging === undefined) return undefined;
    this.old.delete(key);
    this.put(key, aging);
    return aging;
  }

  set(key: string, value: Value): void {
    this.old.delete(key);
    this.put(key, value);
  }

  delete(key: string): void {
    this.young.delete(key);
    this.old.delete(key);
  }

  clear(): void {
    this.young = new Map();
    this.old = new Map();
  }

  get size(): number {
    return this.young.size + this.old.size;
  }

  private put(key: string, value: Value): void {
    if (!this.young.has(key) && this.young.size >= this.generationSize) {
      this.old = this.young;
      this.young = new Map();
    }
    this.young.set(key, value);
  }
}

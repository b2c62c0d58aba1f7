import { readFileSync } from 'node:fs';

/** Tollgate's version, from package.json (two levels up from both src/kernel and dist/kernel). */
export const version: string = (JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string }).version;

import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { checkImports } from '../scripts/check-imports.mjs';

const fixture = fileURLToPath(new URL('./fixtures/import-rules', import.meta.url));

describe('import rules (.dependency-cruiser.cjs, run by npm test)', () => {
  it('report each broken rule of a fixture, type-only imports included, and nothing else', async () => {
    expect((await checkImports(fixture)).sort()).toEqual([
      'composition-root-imports-indexes: src/app.ts -> src/shop/order.ts',
      'no-circular: src/shop/order.ts -> src/shop/receipt.ts -> src/shop/order.ts',
      'no-deep-import-across-modules: src/shop/order.ts -> src/ledger/entry.ts',
      'no-module-cycle: shelf -> stock -> shelf',
      'pure-cores-import-no-adapters: src/rating/price.ts -> fs',
    ]);
  });

  it('hold in src/', async () => {
    expect(await checkImports()).toEqual([]);
  });
});

import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { describe, expect, it } from 'vitest';

const depsDir = 'node_modules/@grpc/grpc-js-xds/deps';
const depRoots = ['envoy-api', 'googleapis', 'xds', 'protoc-gen-validate'];

function listProtos(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    return statSync(path).isDirectory() ? listProtos(path) : path.endsWith('.proto') ? [path] : [];
  });
}

describe('proto/', () => {
  const files = listProtos('proto').map((path) => relative('proto', path));

  it('holds the ext_authz, ALS and bootstrap protos', () => {
    expect(files).toEqual(
      expect.arrayContaining([
        'envoy/service/auth/v3/external_auth.proto',
        'envoy/service/accesslog/v3/als.proto',
        'envoy/config/bootstrap/v3/bootstrap.proto',
      ]),
    );
  });

  it('is byte-identical to the canonical protos in @grpc/grpc-js-xds', () => {
    for (const file of files) {
      const canonical = depRoots.map((root) => join(depsDir, root, file)).find((path) => {
        try {
          return statSync(path).isFile();
        } catch {
          return false;
        }
      });
      expect(canonical, `${file} exists in @grpc/grpc-js-xds`).toBeDefined();
      expect(readFileSync(join('proto', file)).equals(readFileSync(canonical!)), `${file} is byte-identical`).toBe(true);
    }
  });

  it('is closed under imports (every import is a copied file or a protobuf well-known type)', () => {
    const present = new Set(files);
    for (const file of files) {
      for (const [, imported] of readFileSync(join('proto', file), 'utf8').matchAll(/^import\s+(?:public\s+|weak\s+)?"([^"]+)";/gm)) {
        if (!imported!.startsWith('google/protobuf/')) expect(present.has(imported!), `${file} imports ${imported}`).toBe(true);
      }
    }
  });
});

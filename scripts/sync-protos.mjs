// Copies the canonical Envoy/xds/googleapis/validate protos Tollgate needs, with their full import closure,
// from @grpc/grpc-js-xds into proto/. Run after upgrading @grpc/grpc-js-xds; test/proto.test.ts checks the copies.
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = dirname(dirname(fileURLToPath(import.meta.url)));
export const depsDir = join(root, 'node_modules/@grpc/grpc-js-xds/deps');
export const depRoots = ['envoy-api', 'googleapis', 'xds', 'protoc-gen-validate'];
export const rootProtos = [
  'envoy/service/auth/v3/external_auth.proto',
  'envoy/service/accesslog/v3/als.proto',
  'envoy/config/bootstrap/v3/bootstrap.proto',
  'envoy/extensions/filters/network/http_connection_manager/v3/http_connection_manager.proto',
  'envoy/extensions/filters/http/ext_authz/v3/ext_authz.proto',
  'envoy/extensions/filters/http/router/v3/router.proto',
  'envoy/extensions/access_loggers/grpc/v3/als.proto',
  'envoy/extensions/access_loggers/stream/v3/stream.proto',
  'envoy/extensions/upstreams/http/v3/http_protocol_options.proto',
  // envoy/envoy-tls.yaml: TLS towards Tollgate, its certificates from file-watched SDS resources (envoy/sds/).
  'envoy/extensions/transport_sockets/tls/v3/tls.proto',
  'envoy/service/discovery/v3/discovery.proto',
];

function locate(file) {
  for (const dep of depRoots) {
    const path = join(depsDir, dep, file);
    if (existsSync(path)) return path;
  }
  // google/protobuf/*.proto are built into protobufjs and are not shipped in deps
  if (file.startsWith('google/protobuf/')) return undefined;
  throw new Error(`proto ${file} not found in ${depsDir}`);
}

const seen = new Map();
const queue = [...rootProtos];
while (queue.length > 0) {
  const file = queue.pop();
  if (seen.has(file)) continue;
  const source = locate(file);
  seen.set(file, source);
  if (!source) continue;
  for (const match of readFileSync(source, 'utf8').matchAll(/^import\s+(?:public\s+|weak\s+)?"([^"]+)";/gm)) {
    queue.push(match[1]);
  }
}

const out = join(root, 'proto');
rmSync(out, { recursive: true, force: true });
let copied = 0;
for (const [file, source] of [...seen].sort()) {
  if (!source) continue;
  mkdirSync(dirname(join(out, file)), { recursive: true });
  writeFileSync(join(out, file), readFileSync(source));
  copied++;
}
console.log(`copied ${copied} protos into proto/`);

/**
 * The Check benchmark's baselines and candidate transports, each an ext_authz server that answers OK without looking
 * at the request: `grpc-js` (what Tollgate served with before, and what most Node ext_authz servers use),
 * `connect` (@connectrpc/connect-node over node:http2), `own` (Tollgate's gRPC transport, src/grpc/transport.ts,
 * with a null handler) and `bare` (node:http2 answering every stream with the same framed bytes: the ceiling of any
 * gRPC server on node:http2). Usage: tsx bench/null-servers.ts <kind>; prints its port as one JSON line when ready.
 */
import { constants, createServer, type ServerHttp2Stream } from 'node:http2';
import { createRequire } from 'node:module';
import type { AddressInfo } from 'node:net';
import { createFileRegistry, fromBinary } from '@bufbuild/protobuf';
import { FileDescriptorSetSchema } from '@bufbuild/protobuf/wkt';
import type { ConnectRouter } from '@connectrpc/connect';
import { connectNodeAdapter } from '@connectrpc/connect-node';
import * as grpc from '@grpc/grpc-js';
import protobuf from 'protobufjs';
import { encodeCheckResponseFrame } from '../src/check/check-response-encoder.js';
import { loadEnvoyServices, protoDir } from '../src/grpc/protos.js';
import { createGrpcTransport, unaryMethod } from '../src/grpc/transport.js';

export type NullServerKind = 'grpc-js' | 'connect' | 'own' | 'bare';

// Exit normally on a signal so --cpu-prof can write its profile.
for (const signal of ['SIGINT', 'SIGTERM'] as const) process.once(signal, () => process.exit(0));

const ready = (port: number) => process.stdout.write(`${JSON.stringify({ port })}\n`);
const okFrame = encodeCheckResponseFrame({ allowed: true, upstreamHeaders: {}, removeHeaders: [], responseHeaders: {}, metadata: {}, requestMetadata: {} });
const checkPath = '/envoy.service.auth.v3.Authorization/Check';

async function grpcJs(): Promise<number> {
  // The options grpc-js took when it served Tollgate: keepalive, a high stream limit, and no channelz bookkeeping.
  const server = new grpc.Server({
    'grpc.keepalive_time_ms': 30_000,
    'grpc.keepalive_timeout_ms': 10_000,
    'grpc.max_concurrent_streams': 10_000,
    'grpc.enable_channelz': 0,
  });
  server.addService(loadEnvoyServices().authorization, {
    Check: (_call: unknown, callback: grpc.sendUnaryData<unknown>) => callback(null, { status: { code: 0 } }),
  });
  return new Promise((resolve, reject) => server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (error, port) => (error ? reject(error) : resolve(port))));
}

/** Connect needs protobuf-es descriptors: built at run time from the same canonical protos, through protobufjs's descriptor extension. */
async function connect(): Promise<number> {
  const require = createRequire(import.meta.url);
  const descriptor = require('protobufjs/ext/descriptor') as { FileDescriptorSet: protobuf.Type };
  const root = new protobuf.Root() as protobuf.Root & { toDescriptor(syntax: string): protobuf.Message };
  root.resolvePath = (_origin, target) => (target.startsWith('/') ? target : `${protoDir}/${target}`);
  root.loadSync('envoy/service/auth/v3/external_auth.proto', { keepCase: true }).resolveAll();
  const set = root.toDescriptor('proto3') as unknown as DescriptorSet;
  // protobufjs writes type names relative to their scope; protobuf-es resolves only fully qualified ones.
  for (const file of set.file) {
    qualifyTypeNames(root, file.package ? `.${file.package}` : '', file.messageType ?? []);
    // Annotation extensions (validate, udpa) name their extendees relatively too; a server has no use for them.
    file.extension = [];
  }
  // It also writes one file per package without imports; protobuf-es builds a file only after those it imports.
  const fileOfPackage = new Map(set.file.map((file) => [file.package ?? '', file.name]));
  const fileOf = (typeName: string): string | undefined => {
    for (let cut = typeName.lastIndexOf('.'); cut > 0; cut = typeName.lastIndexOf('.', cut - 1)) {
      const file = fileOfPackage.get(typeName.slice(0, cut));
      if (file) return file;
    }
    return undefined;
  };
  for (const file of set.file) {
    const used = new Set<string>();
    const visit = (messages: MessageDescriptor[]) => {
      for (const message of messages) {
        for (const field of message.field ?? []) {
          const target = field.typeName && root.lookup(field.typeName);
          const owner = target && fileOf(target.fullName.slice(1));
          if (owner && owner !== file.name) used.add(owner);
        }
        visit(message.nestedType ?? []);
      }
    };
    visit(file.messageType ?? []);
    file.dependency = [...used];
  }
  const byName = new Map(set.file.map((file) => [file.name, file]));
  const ordered: DescriptorSet['file'] = [];
  const visiting = new Set<string>();
  const place = (file: DescriptorSet['file'][number]) => {
    if (visiting.has(file.name)) return;
    visiting.add(file.name);
    for (const name of file.dependency ?? []) place(byName.get(name)!);
    ordered.push(file);
  };
  set.file.forEach(place);
  set.file = ordered;
  const bytes = descriptor.FileDescriptorSet.encode(set as never).finish();
  const registry = createFileRegistry(fromBinary(FileDescriptorSetSchema, bytes));
  const service = registry.getService('envoy.service.auth.v3.Authorization');
  if (!service) throw new Error('Authorization service missing from the descriptors');
  const routes = (router: ConnectRouter) => router.service(service, { check: () => ({ status: { code: 0 } }) } as never);
  const server = createServer(connectNodeAdapter({ routes, grpc: true, connect: false, grpcWeb: false }));
  return listen(server);
}

interface MessageDescriptor {
  name: string;
  field?: { name: string; typeName?: string }[];
  nestedType?: MessageDescriptor[];
}
interface DescriptorSet {
  file: { name: string; package?: string; messageType?: MessageDescriptor[]; dependency?: string[]; extension?: unknown[] }[];
}

function qualifyTypeNames(root: protobuf.Root, scope: string, messages: MessageDescriptor[], parent?: protobuf.Type): void {
  for (const message of messages) {
    const name = `${scope}.${message.name}`;
    // Map entries are synthesized by the descriptor: their value type is named relative to the map's message.
    const type = root.lookup(name) as protobuf.Type | null;
    // Extension fields (validate's and udpa's options) are written into the options messages they extend.
    message.field = (message.field ?? []).filter((field) => !type?.fields[field.name]?.extensionField && !field.name.startsWith('.'));
    for (const field of message.field) {
      if (!field.typeName) continue;
      const known = type?.fields[field.name];
      if (known instanceof protobuf.MapField) field.typeName = `${name}.${field.typeName}`;
      else if (known?.resolvedType) field.typeName = known.resolvedType.fullName;
      else if (!type && parent && !field.typeName.startsWith('.')) field.typeName = parent.lookup(field.typeName)?.fullName ?? field.typeName;
    }
    qualifyTypeNames(root, name, message.nestedType ?? [], type ?? parent);
  }
}

async function own(): Promise<number> {
  const transport = createGrpcTransport({
    methods: new Map([[checkPath, unaryMethod<Buffer, null>({ authenticated: false, decode: (bytes) => bytes, encode: () => okFrame, handle: (_request, call) => call.respond(null) })]]),
  });
  return transport.listen('127.0.0.1', 0);
}

async function bare(): Promise<number> {
  const server = createServer({ settings: { maxConcurrentStreams: 1000 } });
  const headers = { [constants.HTTP2_HEADER_STATUS]: 200, [constants.HTTP2_HEADER_CONTENT_TYPE]: 'application/grpc' };
  server.on('stream', (stream: ServerHttp2Stream) => {
    // The load generator cuts its connections when a round ends.
    stream.on('error', () => {});
    stream.on('data', () => {});
    stream.once('end', () => {
      stream.respond(headers, { waitForTrailers: true });
      stream.once('wantTrailers', () => stream.sendTrailers({ 'grpc-status': '0' }));
      stream.end(okFrame);
    });
  });
  return listen(server);
}

function listen(server: ReturnType<typeof createServer>): Promise<number> {
  server.on('session', (session) => session.on('error', () => {}));
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve((server.address() as AddressInfo).port)));
}

const kinds: Record<NullServerKind, () => Promise<number>> = { 'grpc-js': grpcJs, connect, own, bare };
const kind = process.argv[2] as NullServerKind;
if (!kinds[kind]) throw new Error(`usage: null-servers.ts ${Object.keys(kinds).join('|')}`);
ready(await kinds[kind]());

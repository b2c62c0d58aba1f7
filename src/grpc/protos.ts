import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';

/** proto/ holds byte-identical copies of the canonical Envoy protos (see scripts/sync-protos.mjs). */
export const protoDir = join(dirname(fileURLToPath(import.meta.url)), '../../proto');

export const loaderOptions: protoLoader.Options = {
  keepCase: true,
  longs: String,
  enums: String,
  defaults: false,
  oneofs: true,
  includeDirs: [protoDir],
};

export interface EnvoyServices {
  authorization: grpc.ServiceDefinition;
  accessLog: grpc.ServiceDefinition;
  /** Client constructors, for the CLI's `check` and for tests that play Envoy. */
  AuthorizationClient: grpc.ServiceClientConstructor;
  AccessLogServiceClient: grpc.ServiceClientConstructor;
}

let loaded: EnvoyServices | undefined;

export function loadEnvoyServices(): EnvoyServices {
  if (loaded) return loaded;
  const definition = protoLoader.loadSync(
    ['envoy/service/auth/v3/external_auth.proto', 'envoy/service/accesslog/v3/als.proto'],
    loaderOptions,
  );
  const root = grpc.loadPackageDefinition(definition) as unknown as {
    envoy: { service: { auth: { v3: { Authorization: grpc.ServiceClientConstructor } }; accesslog: { v3: { AccessLogService: grpc.ServiceClientConstructor } } } };
  };
  const AuthorizationClient = root.envoy.service.auth.v3.Authorization;
  const AccessLogServiceClient = root.envoy.service.accesslog.v3.AccessLogService;
  loaded = {
    authorization: AuthorizationClient.service,
    accessLog: AccessLogServiceClient.service,
    AuthorizationClient,
    AccessLogServiceClient,
  };
  return loaded;
}

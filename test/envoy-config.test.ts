import { readFileSync } from 'node:fs';
import protobuf from 'protobufjs';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { decodeProtoJson, loadProtoRoot, messageToObject, ProtoJsonError } from './support/proto-json.js';

const bootstrapType = 'envoy.config.bootstrap.v3.Bootstrap';
const extAuthzType = 'type.googleapis.com/envoy.extensions.filters.http.ext_authz.v3.ExtAuthz';
const routerType = 'type.googleapis.com/envoy.extensions.filters.http.router.v3.Router';
const grpcAccessLogTypeName = 'envoy.extensions.access_loggers.grpc.v3.HttpGrpcAccessLogConfig';
const grpcAccessLogType = `type.googleapis.com/${grpcAccessLogTypeName}`;
const httpProtocolOptionsKey = 'envoy.extensions.upstreams.http.v3.HttpProtocolOptions';
const httpFiltersPath = '$.static_resources.listeners[0].filter_chains[0].filters[0].typed_config.http_filters';

const root = loadProtoRoot();
const envoyYaml = readFileSync(new URL('../envoy/envoy.yaml', import.meta.url), 'utf8');

// Decoded configs are plain JSON-shaped trees; the assertions below check their shape.
type Config = any;

/** A fresh, mutable copy of envoy/envoy.yaml as parsed JSON. */
function envoyConfig(): Config {
  return parse(envoyYaml) as Config;
}

function decode(typeName: string, json: unknown): Config {
  return messageToObject(decodeProtoJson(root, typeName, json).message);
}

function expectRejected(typeName: string, json: unknown, path: string, problem: RegExp): void {
  let error: unknown;
  try {
    decodeProtoJson(root, typeName, json);
  } catch (caught) {
    error = caught;
  }
  expect(error).toBeInstanceOf(ProtoJsonError);
  expect((error as ProtoJsonError).path).toBe(path);
  expect((error as ProtoJsonError).problem).toMatch(problem);
}

function connectionManager(config: Config): Config {
  return config.static_resources.listeners[0].filter_chains[0].filters[0].typed_config;
}

function httpFilter(config: Config, name: string): Config {
  return connectionManager(config).http_filters.find((filter: Config) => filter.name === name);
}

function seconds(duration: { seconds?: string; nanos?: number }): number {
  return Number(duration.seconds ?? 0) + (duration.nanos ?? 0) / 1e9;
}

/** Clusters named by gRPC services (ext_authz, ALS, ...) and by routes, anywhere in the decoded config. */
function referencedClusters(node: unknown, key = ''): string[] {
  if (Array.isArray(node)) return node.flatMap((item) => referencedClusters(item, key));
  if (typeof node !== 'object' || node === null) return [];
  const object = node as Record<string, unknown>;
  const own =
    key === 'envoy_grpc' ? [object['cluster_name']] : key === 'route' && 'cluster' in object ? [object['cluster']] : [];
  const nested = Object.entries(object).flatMap(([childKey, child]) => referencedClusters(child, childKey));
  return [...(own as string[]), ...nested];
}

describe('strict proto3 JSON decoding', () => {
  it('accepts both the proto field name and its lowerCamel JSON name', () => {
    const snake = decode('envoy.config.cluster.v3.Cluster', { name: 'a', connect_timeout: '0.25s' });
    const camel = decode('envoy.config.cluster.v3.Cluster', { name: 'a', connectTimeout: '0.25s' });
    expect(camel).toEqual(snake);
    expect(seconds(snake.connect_timeout)).toBe(0.25);
  });

  it('reads wrappers as plain values, Struct as any JSON and enums by name', () => {
    const cluster = decode('envoy.config.cluster.v3.Cluster', {
      name: 'a',
      type: 'STRICT_DNS',
      per_connection_buffer_limit_bytes: 32768,
      metadata: { filter_metadata: { tollgate: { tier: 'pro', weight: 2, tags: ['a', true, null] } } },
    });
    expect(cluster.type).toBe('STRICT_DNS');
    expect(cluster.per_connection_buffer_limit_bytes).toEqual({ value: 32768 });
    expect(cluster.metadata.filter_metadata.tollgate.fields.tier).toEqual({ stringValue: 'pro' });
    expect(cluster.metadata.filter_metadata.tollgate.fields.tags.listValue.values).toEqual([
      { stringValue: 'a' },
      { boolValue: true },
      { nullValue: 'NULL_VALUE' },
    ]);
  });

  it('reads Timestamps and keeps 64-bit integers exact, as in ALS entries', () => {
    const entry = decode('envoy.data.accesslog.v3.HTTPAccessLogEntry', {
      common_properties: { start_time: '2025-01-01T00:00:00.5Z' },
      request: { request_id: 'r1', request_body_bytes: '12345678901234567' },
      response: { response_code: 200 },
    });
    expect(entry.common_properties.start_time).toEqual({ seconds: '1735689600', nanos: 500000000 });
    expect(entry.request.request_body_bytes).toBe('12345678901234567');
    expect(entry.response.response_code).toEqual({ value: 200 });
  });

  it('checks map keys against their key type', () => {
    const source = 'syntax = "proto3"; message Counters { map<int32, string> by_id = 1; }';
    const { root: counters } = protobuf.parse(source, { keepCase: true });
    expect(messageToObject(decodeProtoJson(counters, 'Counters', { byId: { '7': 'a' } }).message)).toEqual({
      by_id: { '7': 'a' },
    });
    expect(() => decodeProtoJson(counters, 'Counters', { by_id: { seven: 'a' } })).toThrow(/expected int32/);
  });

  it('rejects an unknown field at the top level', () => {
    expectRejected(bootstrapType, { static_resourcez: {} }, '$.static_resourcez', /unknown field "static_resourcez"/);
  });

  it('rejects an unknown field inside an Any-typed filter config', () => {
    const config = envoyConfig();
    httpFilter(config, 'envoy.filters.http.ext_authz').typed_config.failure_mode_alow = false;
    expectRejected(
      bootstrapType,
      config,
      `${httpFiltersPath}[0].typed_config.failure_mode_alow`,
      /unknown field "failure_mode_alow" in envoy\.extensions\.filters\.http\.ext_authz\.v3\.ExtAuthz/,
    );
  });

  it('rejects values of the wrong type', () => {
    const config = envoyConfig();
    config.admin.address.socket_address.port_value = '99o1';
    expectRejected(bootstrapType, config, '$.admin.address.socket_address.port_value', /expected uint32/);
    expectRejected('envoy.config.cluster.v3.Cluster', { connect_timeout: 1 }, '$.connect_timeout', /duration/);
    expectRejected('envoy.config.cluster.v3.Cluster', { name: 7 }, '$.name', /expected string/);
    expectRejected(
      'envoy.config.cluster.v3.Cluster',
      { respect_dns_ttl: 'yes' },
      '$.respect_dns_ttl',
      /expected bool, got string/,
    );
    expectRejected('envoy.config.cluster.v3.Cluster', { name: null }, '$.name', /null is not a value/);
  });

  it('rejects an unknown enum name', () => {
    const config = envoyConfig();
    httpFilter(config, 'envoy.filters.http.ext_authz').typed_config.transport_api_version = 'V4';
    expectRejected(
      bootstrapType,
      config,
      `${httpFiltersPath}[0].typed_config.transport_api_version`,
      /"V4" is not a value of envoy\.config\.core\.v3\.ApiVersion/,
    );
  });

  it('rejects an Any whose @type does not resolve', () => {
    const config = envoyConfig();
    httpFilter(config, 'envoy.filters.http.router').typed_config['@type'] =
      'type.googleapis.com/envoy.extensions.filters.http.router.v3.Routr';
    expectRejected(
      bootstrapType,
      config,
      `${httpFiltersPath}[1].typed_config["@type"]`,
      /names no message type/,
    );
  });

  it('rejects two members of one oneof and a field given under both names', () => {
    const grpcService = { envoy_grpc: { cluster_name: 'a' }, google_grpc: { target_uri: 'a', stat_prefix: 'a' } };
    expectRejected('envoy.config.core.v3.GrpcService', grpcService, '$', /oneof target_specifier/);
    expectRejected(
      'envoy.config.cluster.v3.Cluster',
      { connect_timeout: '1s', connectTimeout: '1s' },
      '$.connectTimeout',
      /given twice/,
    );
  });

  it('reports deprecated fields and enum values', () => {
    const result = decodeProtoJson(root, bootstrapType, { admin: { access_log_path: '/dev/null' } });
    expect(result.deprecated).toEqual(['$.admin.access_log_path']);
    const logger = { common_config: { log_name: 'a', transport_api_version: 'V2' } };
    const v2 = decodeProtoJson(root, grpcAccessLogTypeName, logger);
    expect(v2.deprecated).toEqual(['$.common_config.transport_api_version']);
  });
});

describe('envoy/envoy.yaml', () => {
  const decoded = decodeProtoJson(root, bootstrapType, envoyConfig());
  const config: Config = messageToObject(decoded.message);
  const manager = connectionManager(config);
  const filterNames: string[] = manager.http_filters.map((filter: Config) => filter.name);
  const extAuthz = httpFilter(config, 'envoy.filters.http.ext_authz').typed_config;

  it('decodes strictly as a Bootstrap without deprecated fields', () => {
    expect(decoded.deprecated).toEqual([]);
  });

  it('listens on 10000 with an HTTP connection manager and serves admin on 9901', () => {
    const listener = config.static_resources.listeners[0];
    expect(listener.address.socket_address.port_value).toBe(10000);
    expect(manager['@type']).toBe(
      'type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager',
    );
    expect(config.admin.address.socket_address.port_value).toBe(9901);
  });

  it('runs ext_authz before the router, and the router last', () => {
    const extAuthzIndex = filterNames.indexOf('envoy.filters.http.ext_authz');
    expect(extAuthzIndex).toBeGreaterThanOrEqual(0);
    expect(extAuthzIndex).toBeLessThan(filterNames.indexOf('envoy.filters.http.router'));
    expect(filterNames.at(-1)).toBe('envoy.filters.http.router');
    expect(httpFilter(config, 'envoy.filters.http.router').typed_config['@type']).toBe(routerType);
  });

  it('asks Tollgate over gRPC v3, with a timeout, failing closed', () => {
    expect(extAuthz['@type']).toBe(extAuthzType);
    expect(extAuthz.grpc_service.envoy_grpc.cluster_name).toBe('tollgate');
    expect(extAuthz.transport_api_version).toBe('V3');
    expect(seconds(extAuthz.grpc_service.timeout)).toBe(0.25);
    expect(extAuthz.failure_mode_allow ?? false).toBe(false);
    expect(extAuthz.status_on_error.code).toBe('ServiceUnavailable');
    expect(extAuthz.include_peer_certificate ?? false).toBe(false);
  });

  it('sends the Check only the headers it reads, through ExtAuthz.allowed_headers', () => {
    const allowed = extAuthz.allowed_headers.patterns.map((pattern: Config) => pattern.exact ?? `${pattern.prefix}*`);
    expect(allowed.sort()).toEqual([':authority', 'authorization', 'x-api-key', 'x-request-id', 'x-tollgate-*']);
  });

  it('hands the Check the normalised path the upstream will see', () => {
    expect(manager.normalize_path).toEqual({ value: true });
    expect(manager.merge_slashes).toBe(true);
    expect(manager.path_with_escaped_slashes_action).toBe('REJECT_REQUEST');
  });

  it('generates a request id the client cannot choose', () => {
    expect(manager.generate_request_id ?? { value: true }).toEqual({ value: true });
    expect(manager.preserve_external_request_id ?? false).toBe(false);
  });

  it('streams access logs to Tollgate as log "tollgate" over v3', () => {
    const [logger] = manager.access_log;
    expect(logger.name).toBe('envoy.access_loggers.http_grpc');
    expect(logger.typed_config['@type']).toBe(grpcAccessLogType);
    const common = logger.typed_config.common_config;
    expect(common.log_name).toBe('tollgate');
    expect(common.transport_api_version).toBe('V3');
    expect(common.grpc_service.envoy_grpc.cluster_name).toBe('tollgate');
  });

  it('talks HTTP/2 to the tollgate cluster at tollgate:9001 and routes to petstore:8000', () => {
    const clusters = new Map<string, Config>(config.static_resources.clusters.map((c: Config) => [c.name, c]));
    const tollgate = clusters.get('tollgate');
    const protocolOptions = tollgate.typed_extension_protocol_options[httpProtocolOptionsKey];
    expect(protocolOptions['@type']).toBe(`type.googleapis.com/${httpProtocolOptionsKey}`);
    expect(protocolOptions.explicit_http_config.http2_protocol_options).toBeDefined();
    const endpointOf = (cluster: Config) => cluster.load_assignment.endpoints[0].lb_endpoints[0].endpoint.address;
    expect(endpointOf(tollgate).socket_address).toMatchObject({ address: 'tollgate', port_value: 9001 });
    const petstore = clusters.get('petstore');
    expect(endpointOf(petstore).socket_address).toMatchObject({ address: 'petstore', port_value: 8000 });
  });

  it('defines every cluster it references', () => {
    const defined = config.static_resources.clusters.map((cluster: Config) => cluster.name);
    const referenced = referencedClusters(config);
    expect(new Set(referenced)).toEqual(new Set(['tollgate', 'petstore']));
    for (const name of referenced) expect(defined).toContain(name);
  });
});

describe('envoy/envoy-tls.yaml', () => {
  const tlsYaml = parse(readFileSync(new URL('../envoy/envoy-tls.yaml', import.meta.url), 'utf8')) as Config;
  const decoded = decodeProtoJson(root, bootstrapType, tlsYaml);
  const config: Config = messageToObject(decoded.message);
  const plain: Config = decode(bootstrapType, envoyConfig());
  const clusters = new Map<string, Config>(config.static_resources.clusters.map((c: Config) => [c.name, c]));
  const tlsContext = clusters.get('tollgate').transport_socket.typed_config;
  const sdsFile = (path: string) => new URL(`../envoy/sds/${path.replace('/etc/envoy/sds/', '')}`, import.meta.url);

  it('decodes strictly as a Bootstrap without deprecated fields, with the listener of envoy/envoy.yaml', () => {
    expect(decoded.deprecated).toEqual([]);
    expect(config.static_resources.listeners).toEqual(plain.static_resources.listeners);
  });

  it('talks HTTP/2 over TLS to Tollgate, presenting a client certificate and trusting only its CA and name', () => {
    expect(tlsContext['@type']).toBe('type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext');
    const common = tlsContext.common_tls_context;
    expect(common.alpn_protocols).toEqual(['h2']);
    expect(common.tls_certificate_sds_secret_configs.map((secret: Config) => secret.name)).toEqual(['tollgate-client']);
    expect(common.combined_validation_context.validation_context_sds_secret_config.name).toBe('tollgate-ca');
    expect(common.combined_validation_context.default_validation_context.match_typed_subject_alt_names).toEqual([
      { san_type: 'DNS', matcher: { exact: tlsContext.sni } },
    ]);
    const endpoint = clusters.get('tollgate').load_assignment.endpoints[0].lb_endpoints[0].endpoint.address.socket_address;
    expect(endpoint).toMatchObject({ address: tlsContext.sni, port_value: 9001 });
  });

  it('reads its certificates from SDS files that exist, decode strictly, and name the secrets it asks for', () => {
    const common = tlsContext.common_tls_context;
    const configs = [...common.tls_certificate_sds_secret_configs, common.combined_validation_context.validation_context_sds_secret_config];
    for (const secretConfig of configs) {
      const source = secretConfig.sds_config.path_config_source;
      expect(source.watched_directory.path).toBe('/etc/envoy/tls');
      const response = decode('envoy.service.discovery.v3.DiscoveryResponse', parse(readFileSync(sdsFile(source.path), 'utf8')));
      expect(response.resources.map((resource: Config) => resource.name)).toEqual([secretConfig.name]);
      expect(response.resources[0]['@type']).toBe('type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.Secret');
    }
  });
});

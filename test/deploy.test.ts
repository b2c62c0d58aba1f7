// Deployment artifacts: Kubernetes overlays rendered with `kubectl kustomize`, Istio resources and mesh config, the
// Compose demo and the Dockerfile. Kustomizations must render on kustomize v2.0.3 (Debian's kubectl 1.20, which CI
// installs) and on v5; set TOLLGATE_TEST_KUBECTL to run these tests with another kubectl binary.
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { parse, parseAllDocuments } from 'yaml';
import { parseCatalog } from '../src/catalog/load.js';
import { loadConfig } from '../src/config/config.js';

const repoRoot = fileURLToPath(new URL('..', import.meta.url));
const kubectl = process.env['TOLLGATE_TEST_KUBECTL'] ?? 'kubectl';

// Rendered manifests are plain YAML trees; the assertions below check their shape.
type Json = any;

interface Manifest {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string; labels?: Record<string, string> };
  spec?: Json;
  data?: Record<string, string>;
}

const secretName = 'tollgate-secrets';
const secretKeys = ['admin-token', 'metrics-token', 'database-url', 'redis-url', 'usage-signing-key', 'stripe-secret-key', 'stripe-webhook-secret'];
const podLabels = { 'app.kubernetes.io/name': 'tollgate' };

function kustomize(dir: string): Manifest[] {
  let output: string;
  try {
    output = execFileSync(kubectl, ['kustomize', resolve(repoRoot, dir)], { encoding: 'utf8', stdio: 'pipe' });
  } catch (error) {
    const { code, stderr } = error as { code?: string; stderr?: string };
    const hint = code === 'ENOENT' ? " (install kubectl, e.g. Debian's kubernetes-client package)" : '';
    throw new Error(`${kubectl} kustomize ${dir} failed${hint}: ${stderr ?? (error as Error).message}`);
  }
  return parseAllDocuments(output).map((document) => document.toJS() as Manifest);
}

function only(manifests: Manifest[], kind: string): Manifest {
  const matches = manifests.filter((manifest) => manifest.kind === kind);
  expect(matches, `exactly one ${kind}`).toHaveLength(1);
  return matches[0] as Manifest;
}

function readYaml(path: string): Json {
  return parse(readFileSync(join(repoRoot, path), 'utf8'));
}

function tollgateContainer(deployment: Manifest): Json {
  return deployment.spec.template.spec.containers.find((container: Json) => container.name === 'tollgate');
}

function secretEnv(container: Json): Map<string, { key: string; optional: boolean }> {
  const entries = container.env
    .filter((variable: Json) => variable.valueFrom?.secretKeyRef)
    .map((variable: Json) => {
      const ref = variable.valueFrom.secretKeyRef;
      expect(ref.name, variable.name).toBe(secretName);
      return [variable.name, { key: ref.key, optional: ref.optional === true }];
    });
  return new Map(entries);
}

function configMapData(manifests: Manifest[], container: Json): Record<string, string> {
  const names = container.envFrom.map((source: Json) => source.configMapRef.name);
  const maps = manifests.filter((manifest) => manifest.kind === 'ConfigMap' && names.includes(manifest.metadata.name));
  expect(maps, 'every envFrom ConfigMap is rendered').toHaveLength(names.length);
  return Object.assign({}, ...maps.map((map) => map.data));
}

function seconds(duration: string): number {
  const match = /^(\d+(?:\.\d+)?)s$/.exec(duration);
  if (!match) throw new Error(`not a duration in seconds: ${duration}`);
  return Number(match[1]);
}

/** A Kubernetes quantity in bytes (the binary suffixes the manifests use). */
function bytes(quantity: string): number {
  const match = /^(\d+)(Ki|Mi|Gi)?$/.exec(quantity);
  if (!match) throw new Error(`not a quantity: ${quantity}`);
  return Number(match[1]) * { Ki: 2 ** 10, Mi: 2 ** 20, Gi: 2 ** 30, '': 1 }[match[2] ?? '']!;
}

const overlays = {
  embedded: kustomize('deploy/kubernetes/overlays/embedded'),
  production: kustomize('deploy/kubernetes/overlays/production'),
};

describe.each(Object.entries(overlays))('deploy/kubernetes overlay %s', (overlay, manifests) => {
  const deployment = only(manifests, 'Deployment');
  const pod = deployment.spec.template.spec;
  const container = tollgateContainer(deployment);
  const config = configMapData(manifests, container);
  const service = only(manifests, 'Service');

  it('renders the expected kinds, all in namespace tollgate', () => {
    const kinds = manifests.map((manifest) => manifest.kind).sort();
    const expected = ['ConfigMap', 'ConfigMap', 'Deployment', 'Namespace', 'NetworkPolicy', 'PodDisruptionBudget', 'Service'];
    expected.push(...(overlay === 'embedded' ? ['PersistentVolumeClaim'] : ['HorizontalPodAutoscaler']));
    expect(kinds).toEqual(expected.sort());
    for (const manifest of manifests.filter((m) => m.kind !== 'Namespace')) {
      expect(manifest.metadata.namespace, `${manifest.kind} ${manifest.metadata.name}`).toBe('tollgate');
    }
  });

  it('exposes gRPC on 9001 and HTTP on 8080, probing /readyz and grpc.health.v1', () => {
    expect(deployment.spec.selector.matchLabels).toEqual(podLabels);
    expect(deployment.spec.template.metadata.labels).toMatchObject(podLabels);
    expect(container.ports).toEqual([
      { name: 'grpc', containerPort: 9001, protocol: 'TCP' },
      { name: 'http', containerPort: 8080, protocol: 'TCP' },
    ]);
    expect(container.readinessProbe.httpGet).toEqual({ path: '/readyz', port: 'http' });
    if (config['TOLLGATE_GRPC_TLS_CERT']) {
      // Kubernetes' gRPC probe speaks no TLS: over a TLS gRPC port, the process is probed over HTTP.
      for (const probe of [container.livenessProbe, container.startupProbe]) {
        expect(probe.grpc).toBeUndefined();
        expect(probe.httpGet).toEqual({ path: '/healthz', port: 'http' });
      }
    } else {
      // Kubernetes' native gRPC probe takes a port number, not a port name.
      expect(container.livenessProbe.grpc).toEqual({ port: 9001 });
      expect(container.startupProbe.grpc).toEqual({ port: 9001 });
    }
    expect(container.args).toEqual(['serve']);
    expect(config['TOLLGATE_GRPC_PORT']).toBe('9001');
    expect(config['TOLLGATE_HTTP_PORT']).toBe('8080');
  });

  it('keeps serving, not ready, while the pod leaves the endpoints, and drains within the grace period', () => {
    const delayMs = Number(config['TOLLGATE_SHUTDOWN_DELAY_MS']);
    // A terminating pod leaves its Service's endpoints at once; the delay is for the proxies to hear of it.
    expect(delayMs).toBeGreaterThanOrEqual(5_000);
    const drainMs = Number(config['TOLLGATE_SHUTDOWN_GRACE_MS'] ?? loadConfig({}).shutdownGraceMs);
    expect(pod.terminationGracePeriodSeconds * 1000).toBeGreaterThan(delayMs + 2 * drainMs);
  });

  it('runs as non-root on a read-only root filesystem, writing only its data dir and /tmp', () => {
    expect(pod.securityContext).toMatchObject({ runAsNonRoot: true, runAsUser: 1000 });
    expect(container.securityContext).toMatchObject({
      readOnlyRootFilesystem: true,
      allowPrivilegeEscalation: false,
      capabilities: { drop: ['ALL'] },
    });
    const mounts = new Map(container.volumeMounts.map((mount: Json) => [mount.mountPath, mount.name]));
    expect(config['TOLLGATE_DATA_DIR']).toBe('/var/lib/tollgate');
    expect(mounts.get('/var/lib/tollgate')).toBe('data');
    expect(mounts.get('/tmp')).toBe('tmp');
    expect(container.resources.requests).toHaveProperty('cpu');
    expect(container.resources.requests).toHaveProperty('memory');
    expect(container.resources.limits).toHaveProperty('memory');
  });

  it('mounts a valid catalog from the generated ConfigMap at TOLLGATE_CATALOG', () => {
    expect(config['TOLLGATE_CATALOG']).toBe('/etc/tollgate/catalog.yaml');
    const mount = container.volumeMounts.find((m: Json) => m.mountPath === '/etc/tollgate');
    const volume = pod.volumes.find((v: Json) => v.name === mount.name);
    const catalogMap = manifests.find((m) => m.kind === 'ConfigMap' && m.metadata.name === volume.configMap.name);
    const catalogYaml = catalogMap?.data?.['catalog.yaml'] as string;
    expect(() => parseCatalog(catalogYaml, 'deploy/kubernetes/base/catalog.yaml')).not.toThrow();
    expect(parse(catalogYaml)).toEqual(parse(readFileSync('examples/petstore.yaml', 'utf8')));
  });

  it('takes secrets from tollgate-secrets, requiring only what the overlay needs', () => {
    const secrets = secretEnv(container);
    for (const { key } of secrets.values()) expect(secretKeys).toContain(key);
    expect(secrets.get('TOLLGATE_ADMIN_TOKEN')).toEqual({ key: 'admin-token', optional: false });
    expect(secrets.get('TOLLGATE_METRICS_TOKEN')).toEqual({ key: 'metrics-token', optional: false });
    expect(secrets.get('TOLLGATE_STRIPE_SECRET_KEY')).toEqual({ key: 'stripe-secret-key', optional: true });
    expect(secrets.get('TOLLGATE_STRIPE_WEBHOOK_SECRET')).toEqual({ key: 'stripe-webhook-secret', optional: true });
  });

  it('serves both ports from the Service, gRPC marked as such', () => {
    expect(service.metadata.name).toBe('tollgate');
    expect(service.spec.selector).toEqual(podLabels);
    expect(service.spec.ports).toEqual([
      { name: 'grpc', port: 9001, targetPort: 'grpc', appProtocol: 'grpc' },
      { name: 'http', port: 8080, targetPort: 'http', appProtocol: 'http' },
    ]);
  });

  it('admits only labelled callers to the gRPC port, and anyone in the cluster to the admin port', () => {
    const policy = only(manifests, 'NetworkPolicy');
    expect(policy.spec.podSelector.matchLabels).toEqual(podLabels);
    expect(policy.spec.policyTypes).toEqual(['Ingress']);
    const byPort = new Map<number, Json>(policy.spec.ingress.map((rule: Json) => [rule.ports[0].port, rule]));
    expect([...byPort.keys()].sort()).toEqual([8080, 9001]);
    expect(byPort.get(9001).from).toEqual([{ namespaceSelector: {}, podSelector: { matchLabels: { 'tollgate.io/caller': 'true' } } }]);
    expect(byPort.get(8080).from).toBeUndefined();
    // The ports it names are the ones the pod serves.
    const ports = container.ports.map((port: Json) => port.containerPort).sort();
    expect(ports).toEqual([...byPort.keys()].sort());
  });

  it('lets a node drain take one pod at a time', () => {
    const budget = only(manifests, 'PodDisruptionBudget');
    expect(budget.apiVersion).toBe('policy/v1');
    expect(budget.spec.selector.matchLabels).toEqual(podLabels);
    expect(budget.spec.maxUnavailable).toBe(1);
    expect(budget.spec.minAvailable).toBeUndefined();
  });

  it('needs no CRD: only built-in API groups, so it applies on clusters without the Prometheus Operator', () => {
    const builtIn = /^(v1|apps\/v1|policy\/v1|networking\.k8s\.io\/v1|autoscaling\/v2)$/;
    for (const manifest of manifests) expect(manifest.apiVersion, `${manifest.kind} ${manifest.metadata.name}`).toMatch(builtIn);
  });

  it('mounts no service-account token, and bounds every emptyDir', () => {
    expect(pod.automountServiceAccountToken).toBe(false);
    const emptyDirs = pod.volumes.filter((volume: Json) => 'emptyDir' in volume);
    expect(emptyDirs.map((volume: Json) => volume.name)).toContain('tmp');
    for (const volume of emptyDirs) expect(volume.emptyDir.sizeLimit, volume.name).toMatch(/^\d+(Mi|Gi)$/);
    // The data directory holds the spool, which Tollgate lets grow to TOLLGATE_SPOOL_MAX_BYTES before it stops reading.
    const data = emptyDirs.find((volume: Json) => volume.name === 'data');
    if (data) {
      const spoolMaxBytes = Number(config['TOLLGATE_SPOOL_MAX_BYTES'] ?? loadConfig({}).metering.spoolMaxBytes);
      expect(bytes(data.emptyDir.sizeLimit)).toBeGreaterThanOrEqual(1.5 * spoolMaxBytes);
    }
  });

  it('names the image tollgate at the version of package.json, for an overlay of yours to point at a registry', () => {
    const packageJson = JSON.parse(readFileSync(join(repoRoot, 'package.json'), 'utf8'));
    expect(container.image).toBe(`tollgate:${packageJson.version}`);
  });
});

describe('deploy/kubernetes/base', () => {
  it('renders on its own with built-in kinds only: nothing needs the Prometheus Operator', () => {
    const kinds = kustomize('deploy/kubernetes/base').map((manifest) => `${manifest.apiVersion} ${manifest.kind}`);
    expect(kinds.sort()).toEqual([
      'apps/v1 Deployment',
      'networking.k8s.io/v1 NetworkPolicy',
      'policy/v1 PodDisruptionBudget',
      'v1 ConfigMap',
      'v1 ConfigMap',
      'v1 Namespace',
      'v1 Service',
    ]);
  });
});

describe('deploy/kubernetes overlay specifics', () => {
  it('embedded: one replica on a persistent PGlite volume, replaced not rolled, without Redis or PostgreSQL', () => {
    const manifests = overlays.embedded;
    const deployment = only(manifests, 'Deployment');
    const container = tollgateContainer(deployment);
    expect(deployment.spec.replicas).toBe(1);
    expect(deployment.spec.strategy).toEqual({ type: 'Recreate' });
    const data = deployment.spec.template.spec.volumes.find((volume: Json) => volume.name === 'data');
    expect(data).toEqual({ name: 'data', persistentVolumeClaim: { claimName: 'tollgate-data' } });
    expect(only(manifests, 'PersistentVolumeClaim').metadata.name).toBe('tollgate-data');
    const names = [...container.env.map((v: Json) => v.name), ...Object.keys(configMapData(manifests, container))];
    expect(names).not.toContain('TOLLGATE_DATABASE_URL');
    expect(names).not.toContain('TOLLGATE_REDIS_URL');
    expect(manifests.map((manifest) => manifest.kind)).not.toContain('HorizontalPodAutoscaler');
  });

  it('embedded: a memory limit over the measured start peak of PGlite, and a startup budget for a slow first start', () => {
    const deployment = only(overlays.embedded, 'Deployment');
    const container = tollgateContainer(deployment);
    // Max RSS of a first start on empty storage on the image's Node (docs/DEPLOYMENT.md, "Embedded memory").
    const measuredFirstStartPeak = 874 * 2 ** 20;
    expect(bytes(container.resources.limits.memory)).toBeGreaterThanOrEqual(1.4 * measuredFirstStartPeak);
    expect(bytes(container.resources.requests.memory)).toBeLessThanOrEqual(bytes(container.resources.limits.memory));
    // First starts took 16-50 s; liveness must not count before three times the slowest.
    const { periodSeconds, failureThreshold } = container.startupProbe;
    expect(periodSeconds * failureThreshold).toBeGreaterThanOrEqual(150);
  });

  it('production: 3 to 12 spread replicas, Redis, PostgreSQL and one usage signing key for all required from the Secret', () => {
    const manifests = overlays.production;
    const deployment = only(manifests, 'Deployment');
    const container = tollgateContainer(deployment);
    // The HorizontalPodAutoscaler owns the count: a replicas field would reset it at every kubectl apply.
    expect(deployment.spec.replicas).toBeUndefined();
    const autoscaler = only(manifests, 'HorizontalPodAutoscaler');
    expect(autoscaler.apiVersion).toBe('autoscaling/v2');
    expect(autoscaler.spec.scaleTargetRef).toEqual({ apiVersion: 'apps/v1', kind: 'Deployment', name: deployment.metadata.name });
    expect(autoscaler.spec.minReplicas).toBe(3);
    expect(autoscaler.spec.maxReplicas).toBeGreaterThan(autoscaler.spec.minReplicas);
    // It scales on CPU utilisation, which needs a CPU request to be measured against.
    expect(autoscaler.spec.metrics).toEqual([{ type: 'Resource', resource: { name: 'cpu', target: { type: 'Utilization', averageUtilization: 60 } } }]);
    expect(container.resources.requests.cpu).toBeDefined();
    // No fewer replicas than the budget lets a drain take plus one.
    expect(autoscaler.spec.minReplicas).toBeGreaterThan(only(manifests, 'PodDisruptionBudget').spec.maxUnavailable);
    expect(deployment.spec.strategy.rollingUpdate).toEqual({ maxSurge: 1, maxUnavailable: 0 });
    const secrets = secretEnv(container);
    expect(secrets.get('TOLLGATE_DATABASE_URL')).toEqual({ key: 'database-url', optional: false });
    expect(secrets.get('TOLLGATE_REDIS_URL')).toEqual({ key: 'redis-url', optional: false });
    expect(secrets.get('TOLLGATE_USAGE_SIGNING_KEY')).toEqual({ key: 'usage-signing-key', optional: false });
    expect(configMapData(manifests, container)['TOLLGATE_REDIS_FAILURE_MODE']).toBe('local');
    const spread = deployment.spec.template.spec.topologySpreadConstraints;
    expect(spread.map((constraint: Json) => constraint.topologyKey)).toEqual([
      'kubernetes.io/hostname',
      'topology.kubernetes.io/zone',
    ]);
    for (const constraint of spread) expect(constraint.labelSelector.matchLabels).toEqual(podLabels);
  });

  it('production: the gRPC port on TLS from a cert-manager style Secret, callers by client certificate or token', () => {
    const manifests = overlays.production;
    const deployment = only(manifests, 'Deployment');
    const container = tollgateContainer(deployment);
    const config = configMapData(manifests, container);
    const settings = loadConfig(config);
    expect(settings.grpc.tls).toEqual({
      cert: '/etc/tollgate-tls/tls.crt',
      key: '/etc/tollgate-tls/tls.key',
      clientCa: '/etc/tollgate-tls/ca.crt',
      requireClientCertificate: false,
    });
    expect(settings.grpc.callers.tokensFile).toBe('/etc/tollgate-callers/tokens');
    const volumes = new Map<string, Json>(deployment.spec.template.spec.volumes.map((volume: Json) => [volume.name, volume]));
    const mountOf = (path: string) => container.volumeMounts.find((mount: Json) => path.startsWith(`${mount.mountPath}/`));
    for (const file of [settings.grpc.tls!.cert, settings.grpc.tls!.key, settings.grpc.tls!.clientCa!]) {
      const mount = mountOf(file);
      expect(mount.readOnly).toBe(true);
      const volume = volumes.get(mount.name);
      expect(volume.secret.secretName).toBe('tollgate-grpc-tls');
      expect(volume.secret.optional ?? false).toBe(false);
    }
    const tokens = volumes.get(mountOf(settings.grpc.callers.tokensFile!).name);
    expect(tokens.secret).toMatchObject({ secretName: secretName, optional: true, items: [{ key: 'grpc-caller-tokens', path: 'tokens' }] });
  });
});

describe('deploy/kubernetes overlay split', () => {
  const manifests = kustomize('deploy/kubernetes/overlays/split');
  const named = (kind: string, name: string) => {
    const matches = manifests.filter((manifest) => manifest.kind === kind && manifest.metadata.name === name);
    expect(matches, `${kind} ${name}`).toHaveLength(1);
    return matches[0] as Manifest;
  };
  const edge = named('Deployment', 'tollgate');
  const control = named('Deployment', 'tollgate-control');
  const edgeContainer = tollgateContainer(edge);
  const controlContainer = tollgateContainer(control);
  const controlLabels = { 'app.kubernetes.io/name': 'tollgate-control' };
  /** The settings a container starts with, its required secrets stood in for (the optional ones absent), as loadConfig reads them. */
  const settingsOf = (container: Json) => {
    const required = [...secretEnv(container)].filter(([, ref]) => !ref.optional).map(([name]) => name);
    const standIn = (name: string) => (name.endsWith('_DATABASE_URL') ? 'postgres://db/tollgate' : name.endsWith('_REDIS_URL') ? 'redis://redis:6379' : 'x'.repeat(40));
    const fromSecret = Object.fromEntries(required.map((name) => [name, standIn(name)]));
    const env = { ...configMapData(manifests, container), ...fromSecret, ...(container.args[2] ? { TOLLGATE_ROLE: container.args[2] } : {}) };
    return loadConfig(env);
  };

  it('adds the control role to the production overlay: its Deployment, Service, NetworkPolicy and PodDisruptionBudget', () => {
    const production = overlays.production.map((manifest) => `${manifest.kind} ${manifest.metadata.name}`);
    const added = manifests.map((manifest) => `${manifest.kind} ${manifest.metadata.name}`).filter((name) => !production.includes(name));
    expect(added.sort()).toEqual(['Deployment tollgate-control', 'NetworkPolicy tollgate-control', 'PodDisruptionBudget tollgate-control', 'Service tollgate-control']);
    expect(manifests).toHaveLength(overlays.production.length + 4);
    for (const manifest of manifests.filter((m) => m.kind !== 'Namespace')) expect(manifest.metadata.namespace).toBe('tollgate');
  });

  it('runs the edge as the production Deployment, autoscaled, preferring the nodes of the gateway pods', () => {
    expect(edgeContainer.args).toEqual(['serve', '--role', 'edge']);
    expect(settingsOf(edgeContainer).role).toBe('edge');
    expect(edgeContainer.ports.map((port: Json) => port.name)).toEqual(['grpc', 'http']);
    // Its heap bounded well inside its memory limit, whatever Node reads of the container's.
    const heapMiB = Number(/--max-old-space-size=(\d+)/.exec(edgeContainer.env.find((each: Json) => each.name === 'NODE_OPTIONS')?.value ?? '')?.[1]);
    expect(edgeContainer.resources.limits.memory).toBe('1Gi');
    expect(heapMiB).toBeGreaterThanOrEqual(256);
    expect(heapMiB).toBeLessThanOrEqual(512);
    expect(only(manifests, 'HorizontalPodAutoscaler').spec.scaleTargetRef.name).toBe('tollgate');
    const [preferred] = edge.spec.template.spec.affinity.podAffinity.preferredDuringSchedulingIgnoredDuringExecution;
    expect(preferred.podAffinityTerm).toMatchObject({ topologyKey: 'kubernetes.io/hostname', labelSelector: { matchLabels: { 'tollgate.io/caller': 'true' } } });
    // Envoy's Checks go where they went: the Service tollgate, whose gRPC port admits the labelled callers only.
    const service = named('Service', 'tollgate');
    expect(service.spec.selector).toEqual(podLabels);
    const policy = named('NetworkPolicy', 'tollgate');
    expect(policy.spec.podSelector.matchLabels).toEqual(podLabels);
    const grpcRule = policy.spec.ingress.find((rule: Json) => rule.ports[0].port === 9001);
    expect(grpcRule.from).toEqual([{ namespaceSelector: {}, podSelector: { matchLabels: { 'tollgate.io/caller': 'true' } } }]);
  });

  it('runs the control role apart: two replicas, the HTTP port only, on the same stores, catalog and settings', () => {
    expect(control.spec.replicas).toBe(2);
    expect(control.spec.strategy.rollingUpdate).toEqual({ maxSurge: 1, maxUnavailable: 0 });
    expect(controlContainer.args).toEqual(['serve', '--role', 'control']);
    const settings = settingsOf(controlContainer);
    expect(settings.role).toBe('control');
    expect(controlContainer.ports).toEqual([{ name: 'http', containerPort: 8080, protocol: 'TCP' }]);
    for (const probe of [controlContainer.startupProbe, controlContainer.livenessProbe]) expect(probe.httpGet).toEqual({ path: '/healthz', port: 'http' });
    expect(controlContainer.readinessProbe.httpGet).toEqual({ path: '/readyz', port: 'http' });
    const secrets = secretEnv(controlContainer);
    expect(secrets.get('TOLLGATE_DATABASE_URL')).toEqual({ key: 'database-url', optional: false });
    expect(secrets.get('TOLLGATE_REDIS_URL')).toEqual({ key: 'redis-url', optional: false });
    expect(secrets.get('TOLLGATE_ADMIN_TOKEN')).toEqual({ key: 'admin-token', optional: false });
    expect(secrets.get('TOLLGATE_STRIPE_WEBHOOK_SECRET')).toEqual({ key: 'stripe-webhook-secret', optional: true });
    expect(controlContainer.envFrom).toEqual(edgeContainer.envFrom);
    const catalogVolume = (deployment: Manifest) => deployment.spec.template.spec.volumes.find((volume: Json) => volume.name === 'catalog');
    expect(catalogVolume(control)).toEqual(catalogVolume(edge));
    const packageJson = JSON.parse(readFileSync(join(repoRoot, 'package.json'), 'utf8'));
    for (const container of [edgeContainer, controlContainer]) expect(container.image).toBe(`tollgate:${packageJson.version}`);
    expect(control.spec.template.spec.automountServiceAccountToken).toBe(false);
    expect(control.spec.template.spec.securityContext).toMatchObject({ runAsNonRoot: true, runAsUser: 1000 });
    expect(controlContainer.securityContext).toMatchObject({ readOnlyRootFilesystem: true, allowPrivilegeEscalation: false, capabilities: { drop: ['ALL'] } });
    expect(controlContainer.resources.limits).toHaveProperty('memory');
    const delayMs = Number(configMapData(manifests, controlContainer)['TOLLGATE_SHUTDOWN_DELAY_MS']);
    expect(control.spec.template.spec.terminationGracePeriodSeconds * 1000).toBeGreaterThan(delayMs + 2 * settings.shutdownGraceMs);
  });

  it('keeps the control pods out of the edge Service, and serves them on their own Service, NetworkPolicy and budget', () => {
    expect(control.spec.selector.matchLabels).toEqual(controlLabels);
    expect(control.spec.template.metadata.labels).toMatchObject(controlLabels);
    // The edge's selectors must not match control pods, or Envoy's Checks would reach a pod with no gRPC port.
    expect(control.spec.template.metadata.labels['app.kubernetes.io/name']).not.toBe(podLabels['app.kubernetes.io/name']);
    const service = named('Service', 'tollgate-control');
    expect(service.spec.selector).toEqual(controlLabels);
    expect(service.spec.ports).toEqual([{ name: 'http', port: 8080, targetPort: 'http', appProtocol: 'http' }]);
    // Scraped by the monitoring ServiceMonitor, which selects the Services labelled like the edge's.
    expect(service.metadata.labels).toMatchObject(named('Service', 'tollgate').metadata.labels!);
    const policy = named('NetworkPolicy', 'tollgate-control');
    expect(policy.spec.podSelector.matchLabels).toEqual(controlLabels);
    expect(policy.spec.ingress).toEqual([{ ports: [{ port: 8080, protocol: 'TCP' }] }]);
    const budget = named('PodDisruptionBudget', 'tollgate-control');
    expect(budget.spec.selector.matchLabels).toEqual(controlLabels);
    expect(budget.spec.maxUnavailable).toBeLessThan(control.spec.replicas);
  });
});

describe('deploy/kubernetes/monitoring', () => {
  const manifests = kustomize('deploy/kubernetes/monitoring');
  const service = only(overlays.production, 'Service');

  it('holds the Prometheus Operator resources, in namespace tollgate', () => {
    expect(manifests.map((manifest) => manifest.kind).sort()).toEqual(['PrometheusRule', 'ServiceMonitor']);
    for (const manifest of manifests) {
      expect(manifest.apiVersion).toBe('monitoring.coreos.com/v1');
      expect(manifest.metadata.namespace).toBe('tollgate');
    }
  });

  it('has Prometheus scrape /metrics on the http port, and /metrics/business with the metrics token the pod also gets', () => {
    const monitor = only(manifests, 'ServiceMonitor');
    expect(monitor.spec.selector.matchLabels).toEqual(service.metadata.labels);
    const metricsToken = { name: 'tollgate-secrets', key: 'metrics-token' };
    expect(monitor.spec.endpoints).toEqual([
      { port: 'http', path: '/metrics', interval: '15s' },
      { port: 'http', path: '/metrics/business', interval: '60s', bearerTokenSecret: metricsToken },
    ]);
    for (const manifests of Object.values(overlays)) {
      const env = tollgateContainer(only(manifests, 'Deployment')).env;
      expect(env).toContainEqual({ name: 'TOLLGATE_METRICS_TOKEN', valueFrom: { secretKeyRef: metricsToken } });
    }
  });

  it('carries the alerting rules of deploy/prometheus/rules.yml as a PrometheusRule, unchanged', () => {
    const rule = only(manifests, 'PrometheusRule');
    expect(rule.spec.groups).toEqual(readYaml('deploy/prometheus/rules.yml').groups);
  });
});

describe('.github/workflows/release.yml', () => {
  const workflow = readYaml('.github/workflows/release.yml');
  const steps: Json[] = workflow.jobs.image.steps;
  const step = (uses: string) => steps.find((candidate) => candidate.uses?.startsWith(uses));

  it('publishes the image the manifests name, for amd64 and arm64, tagged from the git tag', () => {
    expect(workflow.on.push.tags).toEqual(['v[0-9]+.[0-9]+.[0-9]+']);
    expect(workflow.permissions).toEqual({ contents: 'read', packages: 'write' });
    expect(step('docker/login-action').with.registry).toBe('ghcr.io');
    const imageName = steps.find((candidate) => candidate.id === 'image').run;
    expect(imageName).toContain('ghcr.io/${GITHUB_REPOSITORY_OWNER,,}/tollgate');
    expect(step('docker/metadata-action').with.tags).toContain('type=semver,pattern={{version}}');
    const push = step('docker/build-push-action').with;
    expect(push).toMatchObject({ context: '.', platforms: 'linux/amd64,linux/arm64', push: true, 'build-args': 'COMMIT=${{ github.sha }}' });
    // The manifests' image is `tollgate` at package.json's version, which the tag must equal.
    expect(steps.some((candidate) => candidate.run?.includes('require("./package.json").version'))).toBe(true);
    expect(tollgateContainer(only(overlays.production, 'Deployment')).image.split(':')[0]).toBe('tollgate');
  });
});

describe('your overlay, as README shows it', () => {
  it.each(['production', 'split'])('points the image of overlays/%s at a registry with images: and keeps everything else of the overlay', (overlay) => {
    const dir = mkdtempSync(join(tmpdir(), 'tollgate-overlay-'));
    try {
      const base = relative(dir, join(repoRoot, `deploy/kubernetes/overlays/${overlay}`));
      writeFileSync(
        join(dir, 'kustomization.yaml'),
        [
          'apiVersion: kustomize.config.k8s.io/v1beta1',
          'kind: Kustomization',
          `bases: [${base}]`,
          'images:',
          '  - name: tollgate',
          '    newName: ghcr.io/example/tollgate',
          '    newTag: 0.1.0',
          '',
        ].join('\n'),
      );
      const manifests = kustomize(dir);
      const deployments = manifests.filter((manifest) => manifest.kind === 'Deployment');
      expect(deployments).toHaveLength(overlay === 'split' ? 2 : 1);
      for (const deployment of deployments) expect(tollgateContainer(deployment).image).toBe('ghcr.io/example/tollgate:0.1.0');
      expect(manifests).toHaveLength(kustomize(`deploy/kubernetes/overlays/${overlay}`).length);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('deploy/istio', () => {
  const manifests = kustomize('deploy/istio');
  const mesh = readYaml('deploy/istio/meshconfig.yaml').meshConfig;
  const providers = new Map<string, Json>(mesh.extensionProviders.map((p: Json) => [p.name, p]));
  const extAuthz = providers.get('tollgate-ext-authz').envoyExtAuthzGrpc;
  const accessLog = providers.get('tollgate-als').envoyHttpAls;
  const tollgateService = only(overlays.production, 'Service');
  const tollgateHost = `${tollgateService.metadata.name}.${tollgateService.metadata.namespace}.svc.cluster.local`;

  it('defines the ext_authz and ALS providers with known field names only', () => {
    // Istio's MeshConfig.ExtensionProvider messages (istio/api mesh/v1alpha1/config.proto, as in envoy-notes.md).
    const extAuthzFields = ['service', 'port', 'timeout', 'failOpen', 'statusOnError', 'includeRequestBodyInCheck'];
    const alsFields = [
      'service',
      'port',
      'logName',
      'filterStateObjectsToLog',
      'additionalRequestHeadersToLog',
      'additionalResponseHeadersToLog',
      'additionalResponseTrailersToLog',
    ];
    // Each provider is a name and exactly one provider kind.
    for (const provider of providers.values()) expect(Object.keys(provider)).toHaveLength(2);
    for (const field of Object.keys(extAuthz)) expect(extAuthzFields).toContain(field);
    for (const field of Object.keys(accessLog)) expect(alsFields).toContain(field);
  });

  it('points both providers at the Tollgate Service gRPC port', () => {
    const grpcPort = tollgateService.spec?.ports.find((port: Json) => port.name === 'grpc').port;
    for (const provider of [extAuthz, accessLog]) {
      expect(provider.service).toBe(tollgateHost);
      expect(provider.port).toBe(grpcPort);
    }
    expect(accessLog.logName).toBe('tollgate');
  });

  it('fails closed with 503 within the same time budget as envoy/envoy.yaml', () => {
    const manager = readYaml('envoy/envoy.yaml').static_resources.listeners[0].filter_chains[0].filters[0].typed_config;
    const envoyExtAuthz = manager.http_filters.find((f: Json) => f.name === 'envoy.filters.http.ext_authz')
      .typed_config;
    expect(extAuthz.failOpen).toBe(false);
    expect(envoyExtAuthz.failure_mode_allow).toBe(false);
    expect(extAuthz.statusOnError).toBe('503');
    expect(envoyExtAuthz.status_on_error).toEqual({ code: 'ServiceUnavailable' });
    expect(seconds(extAuthz.timeout)).toBe(0.25);
    expect(seconds(envoyExtAuthz.grpc_service.timeout)).toBe(seconds(extAuthz.timeout));
  });

  it('sends every request of the API workload through the ext_authz provider and its logs to the ALS provider', () => {
    const policy = only(manifests, 'AuthorizationPolicy');
    expect(policy.apiVersion).toBe('security.istio.io/v1');
    expect(policy.spec.action).toBe('CUSTOM');
    expect(providers.has(policy.spec.provider.name)).toBe(true);
    expect(providers.get(policy.spec.provider.name).envoyExtAuthzGrpc).toBeDefined();
    expect(policy.spec.rules).toEqual([{}]);
    // Paths reach the Check as Envoy routes them, with slashes merged as envoy/envoy.yaml does.
    expect(mesh.pathNormalization).toEqual({ normalization: 'MERGE_SLASHES' });
    expect(readYaml('envoy/envoy.yaml').static_resources.listeners[0].filter_chains[0].filters[0].typed_config.merge_slashes).toBe(true);

    const telemetry = only(manifests, 'Telemetry');
    expect(telemetry.apiVersion).toBe('telemetry.istio.io/v1');
    expect(telemetry.spec.selector).toEqual(policy.spec.selector);
    const [logging] = telemetry.spec.accessLogging;
    expect(logging.providers).toEqual([{ name: 'tollgate-als' }]);
    expect(logging.match).toEqual({ mode: 'SERVER' });
  });
});

describe('deploy/istio requirements', () => {
  it('states the Istio versions and that CUSTOM authorization needs sidecar mode, not ambient', () => {
    for (const file of ['deploy/istio/kustomization.yaml', 'deploy/istio/meshconfig.yaml', 'deploy/istio/tollgate/kustomization.yaml']) {
      const text = readFileSync(join(repoRoot, file), 'utf8');
      expect(text, file).toContain('Istio 1.22 or later');
      expect(text, file).toMatch(/sidecar mode/);
    }
    expect(readFileSync(join(repoRoot, 'deploy/istio/kustomization.yaml'), 'utf8')).toMatch(/ambient mode ztunnel refuses CUSTOM/);
  });
});

describe('deploy/istio/tollgate', () => {
  const manifests = kustomize('deploy/istio/tollgate');
  const tollgateService = only(overlays.production, 'Service');
  const apiPolicy = only(kustomize('deploy/istio'), 'AuthorizationPolicy');

  it('takes only mutual TLS on the gRPC port, and lets plaintext reach the admin port', () => {
    const peer = only(manifests, 'PeerAuthentication');
    expect(peer.metadata.namespace).toBe(tollgateService.metadata.namespace);
    expect(peer.spec.selector.matchLabels).toEqual(podLabels);
    expect(peer.spec.mtls.mode).toBe('STRICT');
    expect(peer.spec.portLevelMtls).toEqual({ 8080: { mode: 'PERMISSIVE' } });
  });

  it('lets only the API workload whose sidecar sends Checks and access logs reach the gRPC port', () => {
    const policy = only(manifests, 'AuthorizationPolicy');
    expect(policy.spec.selector.matchLabels).toEqual(podLabels);
    expect(policy.spec.action).toBe('ALLOW');
    const grpcRule = policy.spec.rules.find((rule: Json) => rule.to[0].operation.ports.includes('9001'));
    // The principal is the service account of the namespace the CUSTOM policy protects.
    expect(grpcRule.from).toEqual([{ source: { principals: [`cluster.local/ns/${apiPolicy.metadata.namespace}/sa/petstore`] } }]);
    const adminRule = policy.spec.rules.find((rule: Json) => rule.to[0].operation.ports.includes('8080'));
    expect(adminRule.from).toBeUndefined();
  });
});

describe('deploy/compose/compose.yaml', () => {
  const composeDir = join(repoRoot, 'deploy/compose');
  const compose = readYaml('deploy/compose/compose.yaml');
  const envoy = readYaml('envoy/envoy.yaml');

  it('brings up envoy, tollgate, redis, postgres and the petstore echo', () => {
    expect(Object.keys(compose.services).sort()).toEqual(['envoy', 'petstore', 'postgres', 'redis', 'tollgate']);
  });

  it('runs an Envoy line still maintained (v1.37 to v1.40 in December 2026; each gets a year from its release)', () => {
    const [, minor] = /^envoyproxy\/envoy:v1\.(\d+)-latest$/.exec(compose.services.envoy.image) ?? [];
    expect(Number(minor)).toBeGreaterThanOrEqual(37);
  });

  it('mounts the repository envoy.yaml into Envoy and builds Tollgate from the Dockerfile', () => {
    const [source, target] = compose.services.envoy.volumes[0].split(':');
    expect(resolve(composeDir, source)).toBe(join(repoRoot, 'envoy/envoy.yaml'));
    expect(target).toBe('/etc/envoy/envoy.yaml');
    const build = compose.services.tollgate.build;
    expect(existsSync(join(resolve(composeDir, build.context), build.dockerfile))).toBe(true);
  });

  it('resolves every Envoy upstream to a Compose service on the port it listens on', () => {
    const endpoints = envoy.static_resources.clusters.map(
      (cluster: Json) => cluster.load_assignment.endpoints[0].lb_endpoints[0].endpoint.address.socket_address,
    );
    expect(endpoints).toEqual([
      { address: 'tollgate', port_value: 9001 },
      { address: 'petstore', port_value: 8000 },
    ]);
    for (const { address } of endpoints) expect(compose.services).toHaveProperty(address);
    expect(compose.services.petstore.environment.HTTP_PORT).toBe('8000');
  });

  it('gives Tollgate the Redis and PostgreSQL of the stack', () => {
    const environment = compose.services.tollgate.environment;
    const postgres = compose.services.postgres.environment;
    const database = new URL(environment.TOLLGATE_DATABASE_URL);
    expect(database.hostname).toBe('postgres');
    expect(database.username).toBe(postgres.POSTGRES_USER);
    expect(database.password).toBe(postgres.POSTGRES_PASSWORD);
    expect(database.pathname).toBe(`/${postgres.POSTGRES_DB}`);
    expect(new URL(environment.TOLLGATE_REDIS_URL).hostname).toBe('redis');
    expect(['closed', 'open', 'local']).toContain(environment.TOLLGATE_REDIS_FAILURE_MODE);
  });
});

describe('Dockerfile', () => {
  // Instructions with line continuations joined and comments dropped.
  const instructions = readFileSync(join(repoRoot, 'Dockerfile'), 'utf8')
    .replace(/\\\n/g, ' ')
    .split('\n')
    .map((line) => line.trim())
    .filter((line) => line !== '' && !line.startsWith('#'))
    .map((line) => {
      const [instruction = '', ...args] = line.split(/\s+/);
      return { instruction: instruction.toUpperCase(), args, line };
    });
  const argsOf = (instruction: string) => instructions.filter((i) => i.instruction === instruction);

  it('copies only sources that exist in the repository', () => {
    const sources = argsOf('COPY')
      .filter(({ args }) => !args.some((arg) => arg.startsWith('--from=')))
      .flatMap(({ args }) => args.filter((arg) => !arg.startsWith('--')).slice(0, -1));
    expect(sources).toEqual(expect.arrayContaining(['src', 'proto', 'bin', 'examples', 'package-lock.json']));
    for (const source of sources) expect(existsSync(join(repoRoot, source)), source).toBe(true);
  });

  it('builds with npm ci and tsc into dist/, then runs with production dependencies, every stage on one Node release', () => {
    const [base, ...stages] = argsOf('FROM').map(({ args }) => args);
    // An exact release, never a moving tag; with its multi-arch index digest once one is pinned.
    expect(base?.[0]).toMatch(/^node:\d+\.\d+\.\d+-trixie-slim(@sha256:[0-9a-f]{64})?$/);
    expect(base?.slice(1)).toEqual(['AS', 'node-base']);
    expect(stages.map((stage) => stage[0])).toEqual(['node-base', 'node-base', 'node-base']);
    const runs = argsOf('RUN').map(({ line }) => line);
    expect(runs).toEqual(expect.arrayContaining(['RUN npm ci', 'RUN npm run build', 'RUN npm ci --omit=dev']));
    const buildConfig = JSON.parse(readFileSync(join(repoRoot, 'tsconfig.build.json'), 'utf8'));
    expect(buildConfig.compilerOptions.outDir).toBe('dist');
    expect(argsOf('COPY').map(({ line }) => line)).toContain('COPY --from=build /app/dist ./dist');
  });

  it('runs a Node line that package.json engines admit, and README names the supported lines', () => {
    const packageJson = JSON.parse(readFileSync(join(repoRoot, 'package.json'), 'utf8'));
    const [, major, minor] = /^node:(\d+)\.(\d+)\./.exec(argsOf('FROM')[0]!.args[0]!) ?? [];
    const [, engineMajor, engineMinor] = /^>=(\d+)\.(\d+)$/.exec(packageJson.engines.node) ?? [];
    expect(Number(major) * 1000 + Number(minor)).toBeGreaterThanOrEqual(Number(engineMajor) * 1000 + Number(engineMinor));
    // CI runs the suite on the machine's Node: engines must admit it too.
    const [runningMajor, runningMinor] = process.versions.node.split('.').map(Number);
    expect(runningMajor! * 1000 + runningMinor!).toBeGreaterThanOrEqual(Number(engineMajor) * 1000 + Number(engineMinor));
    expect(readFileSync(join(repoRoot, 'README.md'), 'utf8')).toContain(`The image runs Node.js ${major}`);
  });

  it('records the git commit it was built from for tollgate_build_info', () => {
    expect(argsOf('ARG').map(({ line }) => line)).toContain('ARG COMMIT');
    expect(argsOf('ENV').flatMap(({ args }) => args)).toContain('TOLLGATE_BUILD_COMMIT=${COMMIT}');
  });

  it('runs bin/tollgate.js serve as user node with the data dir and both ports', () => {
    const packageJson = JSON.parse(readFileSync(join(repoRoot, 'package.json'), 'utf8'));
    const entrypoint = JSON.parse(argsOf('ENTRYPOINT')[0]?.line.replace(/^ENTRYPOINT\s+/, '') ?? '[]');
    expect(entrypoint).toEqual(['node', packageJson.bin.tollgate]);
    expect(argsOf('CMD')[0]?.line).toBe('CMD ["serve"]');
    expect(argsOf('USER')[0]?.args).toEqual(['node']);
    expect(argsOf('EXPOSE')[0]?.args).toEqual(['9001', '8080']);
    expect(argsOf('ENV')[0]?.args).toContain('TOLLGATE_DATA_DIR=/var/lib/tollgate');
  });
});

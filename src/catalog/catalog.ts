import { RouteTable, type RouteMatch } from './routes.js';
import type { CatalogDocument, EndpointDocument, PlanDocument, ProductDocument } from './schema.js';

export interface Plan extends PlanDocument {
  /** Endpoint ids this plan may call. */
  allowedEndpoints: ReadonlySet<string>;
}

/** The validated catalog, indexed for the hot path. */
export class Catalog {
  readonly products: ReadonlyMap<string, ProductDocument>;
  readonly plans: ReadonlyMap<string, Plan>;
  readonly upgradeUrl: string | undefined;
  readonly defaultPlan: string | undefined;
  private readonly routes: RouteTable;

  constructor(readonly document: CatalogDocument) {
    this.products = new Map(document.products.map((product) => [product.id, product]));
    this.plans = new Map(
      document.plans.map((plan) => [plan.id, { ...plan, allowedEndpoints: allowedEndpoints(plan, this.products.get(plan.product)!) }]),
    );
    this.upgradeUrl = document.upgrade_url;
    this.defaultPlan = document.default_plan;
    this.routes = new RouteTable(document.products);
  }

  match(host: string, method: string, path: string): RouteMatch | undefined {
    return this.routes.match(host, method, path);
  }

  plan(id: string): Plan | undefined {
    return this.plans.get(id);
  }

  endpoint(productId: string, endpointId: string): EndpointDocument | undefined {
    return this.products.get(productId)?.endpoints.find((endpoint) => endpoint.id === endpointId);
  }
}

function allowedEndpoints(plan: PlanDocument, product: ProductDocument): Set<string> {
  const grants = new Set(plan.entitlements);
  return new Set(
    product.endpoints
      .filter((endpoint) => grants.has('*') || grants.has(endpoint.id) || endpoint.tags.some((tag) => grants.has(tag)))
      .map((endpoint) => endpoint.id),
  );
}

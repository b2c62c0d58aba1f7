// Customers: create, retrieve, update, list, delete.
import type Stripe from 'stripe';
import { z } from 'zod';
import { fromFixture } from '../fixtures.js';
import { newId, randomBase62 } from '../ids.js';
import { emptyable, endpoint, formArray, listParams, metadata, noParams, oneOf, parseParams, text } from '../params.js';
import { pathParam, route, type ApiRequest, type Route } from '../router.js';
import {
  listPage,
  newestFirst,
  requireObject,
  updatedField,
  updatedMetadata,
  type StripeState,
} from '../state.js';

const addressParams = z.strictObject({
  city: text().optional(),
  country: text().optional(),
  line1: text().optional(),
  line2: text().optional(),
  postal_code: text().optional(),
  state: text().optional(),
});

const customerFields = {
  address: emptyable(addressParams).optional(),
  description: emptyable(text()).optional(),
  email: emptyable(text()).optional(),
  invoice_settings: z.strictObject({ default_payment_method: emptyable(text()).optional() }).optional(),
  metadata: metadata().optional(),
  name: emptyable(text()).optional(),
  phone: emptyable(text()).optional(),
  preferred_locales: formArray(text()).optional(),
  tax_exempt: oneOf(['exempt', 'none', 'reverse']).optional(),
};

const createParams = endpoint({ ...customerFields, invoice_prefix: text().optional() });
const updateParams = endpoint(customerFields);
const listCustomerParams = endpoint({ ...listParams, email: text().optional() });

function toAddress(address: z.output<typeof addressParams>): Stripe.Address {
  return {
    city: address.city ?? null,
    country: address.country ?? null,
    line1: address.line1 ?? null,
    line2: address.line2 ?? null,
    postal_code: address.postal_code ?? null,
    state: address.state ?? null,
  };
}

function createCustomer({ params, state, now }: ApiRequest): Stripe.Customer {
  const input = parseParams(createParams, params);
  const customer = fromFixture('customer', {
    id: newId('cus', 14),
    created: now,
    address: input.address ? toAddress(input.address) : null,
    balance: 0,
    // A customer gets a currency with its first invoice or invoice item.
    currency: null,
    description: input.description || null,
    discount: null,
    email: input.email || null,
    invoice_prefix: input.invoice_prefix ?? randomBase62(8).toUpperCase(),
    invoice_settings: {
      custom_fields: null,
      default_payment_method: input.invoice_settings?.default_payment_method || null,
      footer: null,
      rendering_options: null,
    },
    metadata: updatedMetadata({}, input.metadata),
    name: input.name || null,
    next_invoice_sequence: 1,
    phone: input.phone || null,
    preferred_locales: input.preferred_locales ?? [],
    shipping: null,
    tax_exempt: input.tax_exempt ?? 'none',
  });
  state.customers.set(customer.id, customer);
  return customer;
}

/** A live customer, or Stripe's error for an unknown or deleted one. */
export function requireCustomer(state: StripeState, id: string, param?: string): Stripe.Customer {
  return requireObject(state.customers, id, 'customer', param);
}

function retrieveCustomer(request: ApiRequest): Stripe.Customer | Stripe.DeletedCustomer {
  const { params, state } = request;
  parseParams(noParams, params);
  const id = pathParam(request);
  if (state.deletedIds.has(id)) return { id, object: 'customer', deleted: true };
  return requireCustomer(state, id);
}

function updateCustomer(request: ApiRequest): Stripe.Customer {
  const input = parseParams(updateParams, request.params);
  const customer = requireCustomer(request.state, pathParam(request));
  Object.assign(customer, {
    address: updatedField(customer.address, input.address && toAddress(input.address)),
    description: updatedField(customer.description, input.description),
    email: updatedField(customer.email, input.email),
    invoice_settings: {
      ...customer.invoice_settings,
      default_payment_method: updatedField(
        customer.invoice_settings.default_payment_method,
        input.invoice_settings?.default_payment_method,
      ),
    },
    metadata: updatedMetadata(customer.metadata, input.metadata),
    name: updatedField(customer.name, input.name),
    phone: updatedField(customer.phone, input.phone),
    preferred_locales: input.preferred_locales ?? customer.preferred_locales,
    tax_exempt: input.tax_exempt ?? customer.tax_exempt,
  } satisfies Partial<Stripe.Customer>);
  return customer;
}

function listCustomers({ params, state }: ApiRequest): Stripe.ApiList<Stripe.Customer> {
  const input = parseParams(listCustomerParams, params);
  const matching = newestFirst(state.customers.values()).filter(
    (customer) => input.email === undefined || customer.email === input.email,
  );
  return listPage(matching, input, '/v1/customers', 'customer');
}

function deleteCustomer(request: ApiRequest): Stripe.DeletedCustomer {
  const { params, state } = request;
  parseParams(noParams, params);
  const customer = requireCustomer(state, pathParam(request));
  state.customers.delete(customer.id);
  state.deletedIds.add(customer.id);
  return { id: customer.id, object: 'customer', deleted: true };
}

export const customerRoutes: Route[] = [
  route('POST', '/v1/customers', createCustomer),
  route('GET', '/v1/customers', listCustomers),
  route('GET', '/v1/customers/:id', retrieveCustomer),
  route('POST', '/v1/customers/:id', updateCustomer),
  route('DELETE', '/v1/customers/:id', deleteCustomer),
];

// Events: the webhook events built by the server's event factory, as `GET /v1/events` serves them.
import type Stripe from 'stripe';
import { endpoint, formArray, listParams, noParams, parseParams, text } from '../params.js';
import { pathParam, route, type ApiRequest, type Route } from '../router.js';
import { listPage, newestFirst, requireObject } from '../state.js';

const listEventParams = endpoint({ ...listParams, type: text().optional(), types: formArray(text()).optional() });

function retrieveEvent(request: ApiRequest): Stripe.Event {
  parseParams(noParams, request.params);
  return requireObject(request.state.events, pathParam(request), 'event');
}

function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

/** `type` accepts a `*` wildcard (`invoice.*`), as in Stripe. */
function listEvents({ params, state }: ApiRequest): Stripe.ApiList<Stripe.Event> {
  const input = parseParams(listEventParams, params);
  const typePattern =
    input.type === undefined ? undefined : new RegExp(`^${input.type.split('*').map(escapeRegExp).join('.*')}$`);
  const matching = newestFirst(state.events.values()).filter(
    (event) =>
      (typePattern === undefined || typePattern.test(event.type)) &&
      (input.types === undefined || input.types.includes(event.type)),
  );
  return listPage(matching, input, '/v1/events', 'event');
}

function retrieveV2Event(request: ApiRequest): Stripe.V2.Core.Event {
  parseParams(noParams, request.params);
  return requireObject(request.state.v2Events, pathParam(request), 'event');
}

export const eventRoutes: Route[] = [
  route('GET', '/v1/events', listEvents),
  route('GET', '/v1/events/:id', retrieveEvent),
  route('GET', '/v2/core/events/:id', retrieveV2Event),
];

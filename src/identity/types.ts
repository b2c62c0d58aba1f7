/** `erased`: the customer's personal data was erased; its id stays as a tombstone and can never be used again. */
export type CustomerStatus = 'active' | 'suspended' | 'erased';

/**
 * How the status reason of a suspension for non-payment starts. Only such suspensions are lifted when the invoices
 * are paid, and only their denials ask the customer to pay: an operator's suspension stays and says so.
 */
export const paymentSuspensionPrefix = 'payment_overdue:';
export type SubscriptionStatus = 'active' | 'canceled';
export type KeyStatus = 'active' | 'pending' | 'revoked';

export interface Customer {
  id: string;
  name: string;
  email: string | null;
  status: CustomerStatus;
  statusReason: string | null;
  metadata: Record<string, string>;
  createdAt: string;
}

export interface Subscription {
  id: string;
  customerId: string;
  productId: string;
  planId: string;
  status: SubscriptionStatus;
  startedAt: string;
  periodAnchor: string;
  canceledAt: string | null;
}

export interface ApiKey {
  id: string;
  customerId: string;
  appId: string;
  subscriptionId: string;
  name: string | null;
  prefix: string;
  status: KeyStatus;
  createdAt: string;
  revokedAt: string | null;
}

export interface App {
  id: string;
  customerId: string;
  name: string;
  createdAt: string;
}

/** The Check's view of a key, its subscription and its customer. */
export interface KeyState {
  id: string;
  customerId: string;
  subscriptionId: string;
  status: KeyStatus;
}

export interface SubscriptionState {
  id: string;
  customerId: string;
  productId: string;
  planId: string;
  status: SubscriptionStatus;
  periodAnchor: number;
}

export interface CustomerState {
  id: string;
  status: CustomerStatus;
  /** Suspended for an overdue payment (rather than by an operator): the denial asks the customer to pay. */
  overdue: boolean;
}

export interface Identity {
  key: KeyState;
  subscription: SubscriptionState | undefined;
  customer: CustomerState | undefined;
}

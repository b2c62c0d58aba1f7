import type { Db } from './db.js';

export interface Migration {
  version: number;
  name: string;
  /** One statement per entry: PGlite's extended protocol runs one statement per call. */
  statements: string[];
}

/** Keeps updated_at current, which the hot path's identity cache polls for changes. */
const touchTrigger = (table: string) => [
  `CREATE TRIGGER ${table}_touch BEFORE UPDATE ON ${table} FOR EACH ROW EXECUTE FUNCTION tollgate_touch()`,
  `CREATE INDEX ${table}_updated_at ON ${table} (updated_at)`,
];

export const migrations: Migration[] = [
  {
    version: 1,
    name: 'accounts',
    statements: [
      `CREATE FUNCTION tollgate_touch() RETURNS trigger LANGUAGE plpgsql AS $$
       BEGIN NEW.updated_at := clock_timestamp(); RETURN NEW; END $$`,
      `CREATE TABLE customers (
         id text PRIMARY KEY,
         name text NOT NULL,
         email text,
         status text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'suspended')),
         status_reason text,
         metadata jsonb NOT NULL DEFAULT '{}',
         created_at timestamptz NOT NULL DEFAULT clock_timestamp(),
         updated_at timestamptz NOT NULL DEFAULT clock_timestamp())`,
      ...touchTrigger('customers'),
      `CREATE TABLE apps (
         id text PRIMARY KEY,
         customer_id text NOT NULL REFERENCES customers (id),
         name text NOT NULL,
         created_at timestamptz NOT NULL DEFAULT clock_timestamp(),
         updated_at timestamptz NOT NULL DEFAULT clock_timestamp(),
         UNIQUE (customer_id, name))`,
      ...touchTrigger('apps'),
      `CREATE TABLE subscriptions (
         id text PRIMARY KEY,
         customer_id text NOT NULL REFERENCES customers (id),
         product_id text NOT NULL,
         plan_id text NOT NULL,
         status text NOT NULL CHECK (status IN ('active', 'canceled')),
         started_at timestamptz NOT NULL,
         period_anchor timestamptz NOT NULL,
         canceled_at timestamptz,
         created_at timestamptz NOT NULL DEFAULT clock_timestamp(),
         updated_at timestamptz NOT NULL DEFAULT clock_timestamp())`,
      `CREATE UNIQUE INDEX subscriptions_one_active_per_product ON subscriptions (customer_id, product_id)
         WHERE status = 'active'`,
      ...touchTrigger('subscriptions'),
      `CREATE TABLE api_keys (
         id text PRIMARY KEY,
         customer_id text NOT NULL REFERENCES customers (id),
         app_id text NOT NULL REFERENCES apps (id),
         subscription_id text NOT NULL REFERENCES subscriptions (id),
         name text,
         hash text NOT NULL UNIQUE,
         prefix text NOT NULL,
         status text NOT NULL CHECK (status IN ('active', 'pending', 'revoked')),
         created_at timestamptz NOT NULL DEFAULT clock_timestamp(),
         revoked_at timestamptz,
         updated_at timestamptz NOT NULL DEFAULT clock_timestamp())`,
      `CREATE INDEX api_keys_customer ON api_keys (customer_id)`,
      ...touchTrigger('api_keys'),
    ],
  },
  {
    version: 2,
    name: 'usage metering',
    statements: [
      // One row per call, keyed by Envoy's request id (exactly once). Only the key is indexed, for ingest speed:
      // reports read usage_rollups. COLLATE "C" keeps the key index on fast byte comparisons.
      `CREATE TABLE usage_events (
         request_id text COLLATE "C" PRIMARY KEY,
         occurred_at timestamptz NOT NULL,
         period_start timestamptz,
         customer_id text,
         subscription_id text,
         plan_id text,
         product_id text,
         endpoint_id text,
         key_id text,
         method text,
         status smallint,
         weight bigint NOT NULL,
         request_bytes bigint NOT NULL,
         response_bytes bigint NOT NULL,
         duration_us bigint,
         decision text,
         reason text,
         billable boolean NOT NULL,
         captured jsonb)`,
      // Per subscription billing period and endpoint ('' for calls outside the catalog), maintained with the inserts.
      `CREATE TABLE usage_rollups (
         customer_id text NOT NULL,
         subscription_id text NOT NULL,
         period_start timestamptz NOT NULL,
         endpoint_id text NOT NULL,
         calls bigint NOT NULL,
         units bigint NOT NULL,
         billable_calls bigint NOT NULL,
         billable_units bigint NOT NULL,
         denied_calls bigint NOT NULL,
         request_bytes bigint NOT NULL,
         response_bytes bigint NOT NULL,
         PRIMARY KEY (customer_id, subscription_id, period_start, endpoint_id))`,
    ],
  },
  {
    version: 3,
    name: 'billing',
    statements: [
      // Plan changes and cancellations, written in the transaction of the change: rating prorates from them.
      `CREATE TABLE subscription_changes (
         id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
         subscription_id text NOT NULL REFERENCES subscriptions (id),
         kind text NOT NULL CHECK (kind IN ('plan_change', 'cancellation')),
         from_plan_id text NOT NULL,
         to_plan_id text,
         effective_at timestamptz NOT NULL,
         CHECK ((kind = 'plan_change') = (to_plan_id IS NOT NULL)))`,
      `CREATE INDEX subscription_changes_subscription ON subscription_changes (subscription_id, effective_at, id)`,
      `CREATE INDEX subscriptions_customer ON subscriptions (customer_id)`,
      `CREATE FUNCTION tollgate_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
       BEGIN RAISE EXCEPTION '% is append-only', TG_TABLE_NAME USING ERRCODE = 'restrict_violation'; END $$`,
      `CREATE TRIGGER subscription_changes_append_only BEFORE UPDATE OR DELETE ON subscription_changes
         FOR EACH ROW EXECUTE FUNCTION tollgate_append_only()`,
      // One invoice per subscription and billing period: a draft while the period runs, finalized (and then
      // immutable) once it has ended. Amounts are minor units; revenue_share is owed to partners, not billed.
      `CREATE TABLE invoices (
         id text PRIMARY KEY,
         customer_id text NOT NULL REFERENCES customers (id),
         subscription_id text NOT NULL REFERENCES subscriptions (id),
         product_id text NOT NULL,
         plan_id text NOT NULL,
         period_start timestamptz NOT NULL,
         period_end timestamptz NOT NULL,
         currency text NOT NULL,
         mode text NOT NULL CHECK (mode IN ('postpaid', 'prepaid')),
         status text NOT NULL CHECK (status IN ('draft', 'finalized')),
         total bigint NOT NULL,
         revenue_share bigint NOT NULL,
         calls bigint NOT NULL,
         units bigint NOT NULL,
         -- The usage it was rated on: [{endpointId, calls, units}] (counts as strings).
         usage jsonb NOT NULL,
         -- Hash of the rated content: a refresh that rates the same writes nothing.
         fingerprint text NOT NULL,
         rated_at timestamptz NOT NULL,
         finalized_at timestamptz,
         UNIQUE (subscription_id, period_start))`,
      `CREATE INDEX invoices_customer ON invoices (customer_id, period_start)`,
      `CREATE INDEX invoices_period ON invoices (period_start)`,
      // Lines in rating order; kind 'revenue_share' lines are the partner's part and are not in the total.
      `CREATE TABLE invoice_lines (
         invoice_id text NOT NULL REFERENCES invoices (id),
         position integer NOT NULL,
         plan_id text NOT NULL,
         kind text NOT NULL,
         description text NOT NULL,
         quantity numeric NOT NULL,
         unit_price numeric,
         amount bigint NOT NULL,
         billed text NOT NULL CHECK (billed IN ('in_advance', 'in_arrears')),
         endpoint_id text,
         partner text,
         details jsonb NOT NULL DEFAULT '{}',
         PRIMARY KEY (invoice_id, position))`,
      `CREATE FUNCTION tollgate_finalized_invoice_immutable() RETURNS trigger LANGUAGE plpgsql AS $$
       BEGIN
         IF OLD.status = 'finalized' THEN
           RAISE EXCEPTION 'invoice % is finalized and immutable', OLD.id USING ERRCODE = 'restrict_violation';
         END IF;
         IF TG_OP = 'DELETE' THEN RETURN OLD; END IF;
         RETURN NEW;
       END $$`,
      `CREATE TRIGGER invoices_immutable BEFORE UPDATE OR DELETE ON invoices
         FOR EACH ROW EXECUTE FUNCTION tollgate_finalized_invoice_immutable()`,
      // Checked once per statement (lines are written a batch of invoices at a time), in each direction a row moves.
      `CREATE FUNCTION tollgate_finalized_invoice_lines_immutable() RETURNS trigger LANGUAGE plpgsql AS $$
       BEGIN
         IF EXISTS (SELECT 1 FROM invoices WHERE id = ANY (ARRAY(SELECT DISTINCT invoice_id FROM moved_lines)) AND status = 'finalized') THEN
           RAISE EXCEPTION 'the lines of a finalized invoice are immutable' USING ERRCODE = 'restrict_violation';
         END IF;
         RETURN NULL;
       END $$`,
      `CREATE TRIGGER invoice_lines_inserted AFTER INSERT ON invoice_lines REFERENCING NEW TABLE AS moved_lines
         FOR EACH STATEMENT EXECUTE FUNCTION tollgate_finalized_invoice_lines_immutable()`,
      `CREATE TRIGGER invoice_lines_updated_from AFTER UPDATE ON invoice_lines REFERENCING OLD TABLE AS moved_lines
         FOR EACH STATEMENT EXECUTE FUNCTION tollgate_finalized_invoice_lines_immutable()`,
      `CREATE TRIGGER invoice_lines_updated_to AFTER UPDATE ON invoice_lines REFERENCING NEW TABLE AS moved_lines
         FOR EACH STATEMENT EXECUTE FUNCTION tollgate_finalized_invoice_lines_immutable()`,
      `CREATE TRIGGER invoice_lines_deleted AFTER DELETE ON invoice_lines REFERENCING OLD TABLE AS moved_lines
         FOR EACH STATEMENT EXECUTE FUNCTION tollgate_finalized_invoice_lines_immutable()`,
      // A prepaid wallet per customer and currency; its row is the lock every ledger write takes.
      `CREATE TABLE wallets (
         customer_id text NOT NULL REFERENCES customers (id),
         currency text NOT NULL,
         low_balance_threshold bigint NOT NULL DEFAULT 0 CHECK (low_balance_threshold >= 0),
         created_at timestamptz NOT NULL DEFAULT clock_timestamp(),
         PRIMARY KEY (customer_id, currency))`,
      // The wallet ledger, append-only: credits positive, debits negative, minor units. The reference makes every
      // entry idempotent; subscription and period attribute charges to the invoice they pay.
      `CREATE TABLE wallet_entries (
         id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
         customer_id text NOT NULL,
         currency text NOT NULL,
         kind text NOT NULL CHECK (kind IN ('top_up', 'setup_fee', 'recurring_fee', 'plan_change', 'cancellation', 'usage', 'true_up')),
         amount bigint NOT NULL,
         reference text NOT NULL,
         description text NOT NULL,
         subscription_id text REFERENCES subscriptions (id),
         period_start timestamptz,
         occurred_at timestamptz NOT NULL,
         FOREIGN KEY (customer_id, currency) REFERENCES wallets (customer_id, currency),
         UNIQUE (customer_id, reference))`,
      `CREATE INDEX wallet_entries_wallet ON wallet_entries (customer_id, currency, id)`,
      `CREATE INDEX wallet_entries_subscription_period ON wallet_entries (subscription_id, period_start)
         WHERE subscription_id IS NOT NULL`,
      `CREATE TRIGGER wallet_entries_append_only BEFORE UPDATE OR DELETE ON wallet_entries
         FOR EACH ROW EXECUTE FUNCTION tollgate_append_only()`,
    ],
  },
  {
    version: 4,
    name: 'stripe sync',
    statements: [
      // The transactional outbox: one row per piece of work for Stripe, keyed by what it is about, so enqueueing is
      // idempotent. Enqueueing again bumps `revision` (re-arming finished work), which tells a worker that started
      // on an older revision not to mark it done. `key_generation` changes Stripe idempotency keys only after
      // Stripe said a key's saved result is final (Stripe-Should-Retry: false on a 5xx).
      `CREATE TABLE stripe_outbox (
         id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
         kind text NOT NULL,
         subject_id text NOT NULL,
         status text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'done', 'dead')),
         revision integer NOT NULL DEFAULT 0,
         attempts integer NOT NULL DEFAULT 0,
         key_generation integer NOT NULL DEFAULT 0,
         next_attempt_at timestamptz NOT NULL DEFAULT clock_timestamp(),
         last_error text,
         created_at timestamptz NOT NULL DEFAULT clock_timestamp(),
         updated_at timestamptz NOT NULL DEFAULT clock_timestamp(),
         UNIQUE (kind, subject_id))`,
      `CREATE INDEX stripe_outbox_due ON stripe_outbox (next_attempt_at) WHERE status = 'pending'`,
      `CREATE INDEX stripe_outbox_backlog ON stripe_outbox (status) WHERE status <> 'done'`,
      `CREATE TRIGGER stripe_outbox_touch BEFORE UPDATE ON stripe_outbox FOR EACH ROW EXECUTE FUNCTION tollgate_touch()`,
      `CREATE FUNCTION tollgate_stripe_enqueue(work_kind text, work_subject text) RETURNS void LANGUAGE sql AS $$
         INSERT INTO stripe_outbox (kind, subject_id) VALUES (work_kind, work_subject)
         ON CONFLICT (kind, subject_id) DO UPDATE SET
           revision = stripe_outbox.revision + 1,
           status = 'pending',
           attempts = CASE WHEN stripe_outbox.status = 'pending' THEN stripe_outbox.attempts ELSE 0 END,
           next_attempt_at = CASE WHEN stripe_outbox.status = 'pending' THEN stripe_outbox.next_attempt_at ELSE clock_timestamp() END
       $$`,
      // Every write path that creates a customer or changes what Stripe shows of it queues a sync in its own
      // transaction, whoever makes it (admin API, CLI, data erasure).
      `CREATE FUNCTION tollgate_stripe_customer_changed() RETURNS trigger LANGUAGE plpgsql AS $$
       BEGIN PERFORM tollgate_stripe_enqueue('customer.sync', NEW.id); RETURN NULL; END $$`,
      `CREATE TRIGGER customers_stripe_created AFTER INSERT ON customers FOR EACH ROW
         EXECUTE FUNCTION tollgate_stripe_customer_changed()`,
      `CREATE TRIGGER customers_stripe_changed AFTER UPDATE ON customers FOR EACH ROW
         WHEN (OLD.name IS DISTINCT FROM NEW.name OR OLD.email IS DISTINCT FROM NEW.email)
         EXECUTE FUNCTION tollgate_stripe_customer_changed()`,
      `SELECT tollgate_stripe_enqueue('customer.sync', id) FROM customers`,
      // Finalizing an invoice queues its push in the same transaction. Invoices finalized before Stripe was set up
      // are not queued here: `tollgate stripe reconcile --repair` does that, as an operator's decision to charge.
      `CREATE FUNCTION tollgate_stripe_invoice_finalized() RETURNS trigger LANGUAGE plpgsql AS $$
       BEGIN PERFORM tollgate_stripe_enqueue('invoice.finalized', NEW.id); RETURN NULL; END $$`,
      `CREATE TRIGGER invoices_stripe_finalized AFTER INSERT OR UPDATE OF status ON invoices FOR EACH ROW
         WHEN (NEW.status = 'finalized') EXECUTE FUNCTION tollgate_stripe_invoice_finalized()`,
      `CREATE TABLE stripe_customers (
         customer_id text PRIMARY KEY REFERENCES customers (id) ON DELETE CASCADE,
         stripe_customer_id text NOT NULL UNIQUE,
         created_at timestamptz NOT NULL DEFAULT clock_timestamp())`,
      // Every Stripe invoice of our customers that Tollgate knows of: the ones it pushed (invoice_id set) and the
      // ones Stripe made itself (meter mode), with the payment state that drives suspension after the grace period.
      `CREATE TABLE stripe_invoices (
         stripe_invoice_id text PRIMARY KEY,
         invoice_id text UNIQUE,
         customer_id text NOT NULL REFERENCES customers (id) ON DELETE CASCADE,
         status text NOT NULL,
         payment_failed_at timestamptz,
         suspend_at timestamptz,
         suspended_at timestamptz,
         settled_at timestamptz,
         created_at timestamptz NOT NULL DEFAULT clock_timestamp(),
         updated_at timestamptz NOT NULL DEFAULT clock_timestamp())`,
      `CREATE INDEX stripe_invoices_overdue ON stripe_invoices (suspend_at)
         WHERE settled_at IS NULL AND suspended_at IS NULL AND suspend_at IS NOT NULL`,
      `CREATE INDEX stripe_invoices_customer ON stripe_invoices (customer_id)`,
      `CREATE TRIGGER stripe_invoices_touch BEFORE UPDATE ON stripe_invoices FOR EACH ROW EXECUTE FUNCTION tollgate_touch()`,
      // Usage already sent to a Stripe meter per subscription period; `sending_units` pins the cumulative total of
      // the report in flight, so a retry re-sends exactly the same meter event.
      `CREATE TABLE stripe_usage_reports (
         subscription_id text NOT NULL,
         period_start timestamptz NOT NULL,
         reported_units bigint NOT NULL DEFAULT 0,
         sending_units bigint,
         PRIMARY KEY (subscription_id, period_start))`,
      `CREATE TABLE stripe_topups (
         id text PRIMARY KEY,
         customer_id text NOT NULL REFERENCES customers (id),
         amount bigint NOT NULL CHECK (amount > 0),
         currency text NOT NULL,
         success_url text NOT NULL,
         cancel_url text,
         status text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'open', 'paid', 'expired')),
         stripe_session_id text UNIQUE,
         checkout_url text,
         paid_at timestamptz,
         created_at timestamptz NOT NULL DEFAULT clock_timestamp(),
         updated_at timestamptz NOT NULL DEFAULT clock_timestamp())`,
      `CREATE INDEX stripe_topups_customer ON stripe_topups (customer_id)`,
      `CREATE TRIGGER stripe_topups_touch BEFORE UPDATE ON stripe_topups FOR EACH ROW EXECUTE FUNCTION tollgate_touch()`,
      // Webhook events applied, recorded in the transaction of their effect: a redelivery finds its id here.
      `CREATE TABLE stripe_webhook_events (
         id text PRIMARY KEY,
         type text NOT NULL,
         created_at timestamptz NOT NULL,
         applied_at timestamptz NOT NULL DEFAULT clock_timestamp())`,
    ],
  },
  {
    version: 5,
    name: 'usage alerts',
    statements: [
      // Where a customer's alerts are POSTed, and the secret they are signed with. The secret is kept as it is, not
      // hashed: an HMAC cannot be computed from a hash. The admin API shows it once, when the URL is set.
      `CREATE TABLE alert_webhooks (
         customer_id text PRIMARY KEY REFERENCES customers (id) ON DELETE CASCADE,
         url text NOT NULL,
         signing_secret text NOT NULL,
         created_at timestamptz NOT NULL DEFAULT clock_timestamp(),
         updated_at timestamptz NOT NULL DEFAULT clock_timestamp())`,
      `CREATE TRIGGER alert_webhooks_touch BEFORE UPDATE ON alert_webhooks FOR EACH ROW EXECUTE FUNCTION tollgate_touch()`,
      // Alerts fired. The unique key makes each threshold (of its plan) fire once per subscription billing period,
      // whichever pass or replica sees it first; leading with the customer, it also serves a customer's listing.
      `CREATE TABLE usage_alerts (
         id text PRIMARY KEY,
         customer_id text NOT NULL REFERENCES customers (id) ON DELETE CASCADE,
         subscription_id text NOT NULL REFERENCES subscriptions (id) ON DELETE CASCADE,
         plan_id text NOT NULL,
         period_start timestamptz NOT NULL,
         period_end timestamptz NOT NULL,
         type text NOT NULL CHECK (type IN ('quota.threshold_reached', 'wallet.balance_low', 'spend.threshold_exceeded')),
         -- As events show it, amounts normalized: {"quota_percent": 80}, {"wallet_below": "5.00", "currency": "USD"}.
         threshold jsonb NOT NULL,
         -- The value that crossed it, when it fired.
         observed jsonb NOT NULL,
         fired_at timestamptz NOT NULL,
         UNIQUE (customer_id, subscription_id, period_start, plan_id, threshold))`,
      // The delivery log: one row per alert sent to a webhook, retried with backoff until delivered or dead.
      `CREATE TABLE alert_deliveries (
         id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
         alert_id text NOT NULL UNIQUE REFERENCES usage_alerts (id) ON DELETE CASCADE,
         status text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'delivered', 'dead')),
         attempts integer NOT NULL DEFAULT 0,
         next_attempt_at timestamptz NOT NULL DEFAULT clock_timestamp(),
         last_attempt_at timestamptz,
         -- The HTTP status of the last attempt; null when it got no answer (timeout, connection refused).
         last_status_code integer,
         last_error text,
         delivered_at timestamptz,
         created_at timestamptz NOT NULL DEFAULT clock_timestamp(),
         updated_at timestamptz NOT NULL DEFAULT clock_timestamp())`,
      `CREATE INDEX alert_deliveries_due ON alert_deliveries (next_attempt_at) WHERE status = 'pending'`,
      `CREATE TRIGGER alert_deliveries_touch BEFORE UPDATE ON alert_deliveries FOR EACH ROW EXECUTE FUNCTION tollgate_touch()`,
    ],
  },
  {
    version: 6,
    name: 'business metrics and erasure',
    statements: [
      // Each customer's first allowed call, kept by the usage insert: activation and time to first call read it,
      // because usage_events has no index by customer (for ingest speed) and is deleted on erasure.
      `CREATE TABLE customer_first_calls (
         customer_id text PRIMARY KEY,
         first_call_at timestamptz NOT NULL)`,
      `INSERT INTO customer_first_calls (customer_id, first_call_at)
         SELECT customer_id, min(occurred_at) FROM usage_events WHERE customer_id IS NOT NULL AND decision = 'allow' GROUP BY 1`,
      // An erased customer keeps its id as a tombstone (kept invoices and the ledger refer to it), anonymised.
      `ALTER TABLE customers DROP CONSTRAINT customers_status_check`,
      `ALTER TABLE customers ADD CONSTRAINT customers_status_check CHECK (status IN ('active', 'suspended', 'erased'))`,
      `ALTER TABLE customers ADD COLUMN erased_at timestamptz`,
      `CREATE FUNCTION tollgate_erased_customer_refused() RETURNS trigger LANGUAGE plpgsql AS $$
       BEGIN RAISE EXCEPTION 'customer % is erased', OLD.id USING ERRCODE = 'restrict_violation'; END $$`,
      `CREATE TRIGGER customers_erased_unchanged BEFORE UPDATE ON customers FOR EACH ROW WHEN (OLD.status = 'erased')
         EXECUTE FUNCTION tollgate_erased_customer_refused()`,
      // Whatever the write path (admin API, CLI, Stripe webhooks), an erased customer gets nothing new to use.
      `CREATE FUNCTION tollgate_erased_customer_takes_nothing() RETURNS trigger LANGUAGE plpgsql AS $$
       BEGIN
         IF EXISTS (SELECT 1 FROM customers WHERE id = NEW.customer_id AND status = 'erased') THEN
           RAISE EXCEPTION 'customer % is erased', NEW.customer_id USING ERRCODE = 'restrict_violation';
         END IF;
         RETURN NEW;
       END $$`,
      ...['apps', 'subscriptions', 'api_keys', 'stripe_topups', 'alert_webhooks'].map(
        (table) => `CREATE TRIGGER ${table}_erased_customer BEFORE INSERT ON ${table} FOR EACH ROW
           EXECUTE FUNCTION tollgate_erased_customer_takes_nothing()`,
      ),
    ],
  },
  {
    version: 7,
    name: 'captured usage rollups',
    statements: [
      // Sums of the numeric facts captured on billable calls (data capture), keyed like usage_rollups plus the
      // capture's name, maintained by the same statement as the event insert. numeric: exact, never floats.
      `CREATE TABLE usage_captured_rollups (
         customer_id text NOT NULL,
         subscription_id text NOT NULL,
         period_start timestamptz NOT NULL,
         endpoint_id text NOT NULL,
         name text NOT NULL,
         amount numeric NOT NULL,
         PRIMARY KEY (customer_id, subscription_id, period_start, endpoint_id, name))`,
      // Events metered before this version: their billable captured facts, the way the insert sums them.
      `INSERT INTO usage_captured_rollups (customer_id, subscription_id, period_start, endpoint_id, name, amount)
         SELECT e.customer_id, e.subscription_id, e.period_start, coalesce(e.endpoint_id, ''), c.key, sum((c.value #>> '{}')::numeric)
         FROM usage_events e, jsonb_each(e.captured) c
         WHERE e.billable AND e.customer_id IS NOT NULL AND e.subscription_id IS NOT NULL AND e.period_start IS NOT NULL
           AND (c.value #>> '{}') ~ '^[0-9]{1,30}([.][0-9]{1,30})?$'
         GROUP BY 1, 2, 3, 4, 5`,
    ],
  },
  {
    version: 8,
    name: 'server-issued usage ids',
    statements: [
      // Events are keyed by the usage id the Check issues (a client chooses its x-request-id, and a proxy may keep it).
      // Renaming keeps the key and its index without rewriting the table: events stored before keep their request
      // id as their usage id, and an empty request_id.
      `ALTER TABLE usage_events RENAME COLUMN request_id TO usage_id`,
      // Correlation only, not unique, not indexed; absent when Envoy sent none.
      `ALTER TABLE usage_events ADD COLUMN request_id text`,
    ],
  },
  {
    version: 9,
    name: 'stripe meter event timestamps and failures',
    statements: [
      // The timestamp of the meter event in flight, pinned with its units: a retry after a lost answer must send
      // byte-identical parameters under its idempotency key, or Stripe refuses it (400, key reused).
      `ALTER TABLE stripe_usage_reports ADD COLUMN sending_timestamp bigint`,
      // Stripe validates meter events after accepting them; a report it refused later is marked failed here.
      `ALTER TABLE stripe_usage_reports ADD COLUMN failed_at timestamptz, ADD COLUMN failure text`,
    ],
  },
  {
    version: 10,
    name: 'stripe rounding',
    statements: [
      // What Stripe collects minus our invoice's Stripe part: three-decimal currencies are collected in steps of 10
      // minor units, so the rounding difference is recorded with the Stripe invoice, explicitly.
      `ALTER TABLE stripe_invoices ADD COLUMN rounding bigint NOT NULL DEFAULT 0`,
    ],
  },
  {
    version: 11,
    name: 'developer portal sign-in',
    statements: [
      // A portal session: the cookie holds a random id, the table only its SHA-256, so a copy of the database
      // opens no session.
      `CREATE TABLE portal_sessions (
         id_hash text PRIMARY KEY,
         customer_id text NOT NULL REFERENCES customers (id),
         created_at timestamptz NOT NULL,
         expires_at timestamptz NOT NULL)`,
      `CREATE INDEX portal_sessions_customer ON portal_sessions (customer_id)`,
      `CREATE INDEX portal_sessions_expiry ON portal_sessions (expires_at)`,
      // Operator-issued sign-in links: single use (used_at), short-lived, stored as hashes like sessions.
      `CREATE TABLE portal_links (
         token_hash text PRIMARY KEY,
         customer_id text NOT NULL REFERENCES customers (id),
         created_at timestamptz NOT NULL,
         expires_at timestamptz NOT NULL,
         used_at timestamptz)`,
      `CREATE INDEX portal_links_customer ON portal_links (customer_id)`,
      `CREATE INDEX portal_links_expiry ON portal_links (expires_at)`,
      // Sign-up refuses an email already in use, and an identity proxy's email names its customer.
      `CREATE INDEX customers_email ON customers (lower(email))`,
      ...['portal_sessions', 'portal_links'].map(
        (table) => `CREATE TRIGGER ${table}_erased_customer BEFORE INSERT ON ${table} FOR EACH ROW
           EXECUTE FUNCTION tollgate_erased_customer_takes_nothing()`,
      ),
    ],
  },
  {
    version: 12,
    name: 'daily usage rollups',
    statements: [
      // Usage per customer, UTC day and endpoint, for charts over time; kept by the usage insert like usage_rollups.
      `CREATE TABLE usage_daily_rollups (
         customer_id text NOT NULL,
         day date NOT NULL,
         endpoint_id text NOT NULL,
         calls bigint NOT NULL,
         units bigint NOT NULL,
         denied_calls bigint NOT NULL,
         PRIMARY KEY (customer_id, day, endpoint_id))`,
      `INSERT INTO usage_daily_rollups (customer_id, day, endpoint_id, calls, units, denied_calls)
         SELECT customer_id, (occurred_at AT TIME ZONE 'UTC')::date, coalesce(endpoint_id, ''),
           count(*) FILTER (WHERE decision = 'allow'), coalesce(sum(weight) FILTER (WHERE decision = 'allow'), 0),
           count(*) FILTER (WHERE decision = 'deny')
         FROM usage_events
         WHERE customer_id IS NOT NULL AND subscription_id IS NOT NULL AND period_start IS NOT NULL AND decision IN ('allow', 'deny')
         GROUP BY 1, 2, 3`,
    ],
  },
  {
    version: 13,
    name: 'event outbox',
    statements: [
      // Events for the event stream (src/events), queued in the transaction that stores what they report; written
      // only while publishing is configured. id orders them; event_id is the CloudEvent id and the broker's
      // de-duplication key, random so that streams shared by several installations never confuse two events.
      `CREATE TABLE event_outbox (
         id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
         event_id uuid NOT NULL DEFAULT gen_random_uuid(),
         type text NOT NULL,
         customer_id text,
         occurred_at timestamptz NOT NULL,
         data jsonb NOT NULL,
         created_at timestamptz NOT NULL DEFAULT clock_timestamp(),
         published_at timestamptz)`,
      `CREATE INDEX event_outbox_unpublished ON event_outbox (id) WHERE published_at IS NULL`,
      // Published rows are deleted once older than the retention, a batch at a time, found by this index.
      `CREATE INDEX event_outbox_published ON event_outbox (published_at) WHERE published_at IS NOT NULL`,
    ],
  },
  {
    version: 14,
    name: 'event dead letters',
    statements: [
      // Events the broker refused for good (src/events/publisher-loop.ts), moved out of the outbox so that the ones
      // behind them go out; kept until an operator deletes or re-queues them (docs/EVENTS.md).
      `CREATE TABLE event_dead_letters (
         id bigint PRIMARY KEY,
         event_id uuid NOT NULL,
         type text NOT NULL,
         customer_id text,
         occurred_at timestamptz NOT NULL,
         data jsonb NOT NULL,
         created_at timestamptz NOT NULL,
         refused_at timestamptz NOT NULL,
         reason text NOT NULL)`,
    ],
  },
  {
    version: 15,
    name: 'leader epoch',
    statements: [
      // One row: the epoch of the current leader, raised by each replica that takes leadership (src/store/
      // leadership.ts). The leader's led transactions read it FOR SHARE and roll back when it has moved on, so a
      // deposed leader cannot commit; the raise waits for those already checked.
      `CREATE TABLE leader_epoch (
         only_row boolean PRIMARY KEY DEFAULT true CHECK (only_row),
         epoch bigint NOT NULL,
         holder text,
         acquired_at timestamptz)`,
      `INSERT INTO leader_epoch (epoch) VALUES (0)`,
    ],
  },
  {
    version: 16,
    name: 'incremental rating',
    statements: [
      // A subscription whose usage, plan or status changed since its last rating: one row per subscription, put by
      // the usage insert and the triggers below. Each mark bumps version, so the rating pass deletes only the marks
      // it read (a change committed while it rated leaves its mark for the next pass).
      `CREATE TABLE rating_marks (
         subscription_id text PRIMARY KEY,
         version bigint NOT NULL DEFAULT 1)`,
      // When each subscription next needs rating though nothing changed: a period starts or one's finalization falls
      // due. Kept by the rating pass.
      `CREATE TABLE rating_due (
         subscription_id text PRIMARY KEY,
         due_at timestamptz NOT NULL)`,
      `CREATE INDEX rating_due_at ON rating_due (due_at)`,
      `CREATE FUNCTION tollgate_mark_for_rating() RETURNS trigger LANGUAGE plpgsql AS $$
       DECLARE
         marked text;
       BEGIN
         -- Only the branch taken reads its column: subscriptions have no subscription_id.
         IF TG_TABLE_NAME = 'subscriptions' THEN marked := NEW.id; ELSE marked := NEW.subscription_id; END IF;
         INSERT INTO rating_marks AS m (subscription_id) VALUES (marked)
           ON CONFLICT (subscription_id) DO UPDATE SET version = m.version + 1;
         RETURN NULL;
       END $$`,
      // Whatever the write path (admin API, CLI, Stripe webhooks, SQL), a changed subscription is rated again.
      ...['subscriptions', 'subscription_changes'].map(
        (table) => `CREATE TRIGGER ${table}_mark_for_rating AFTER INSERT OR UPDATE ON ${table} FOR EACH ROW
           EXECUTE FUNCTION tollgate_mark_for_rating()`,
      ),
    ],
  },
];

const migrationLock = 0x746f6c6c; // "toll"

/** Applies pending migrations in order, once, even with several replicas starting together. */
export async function migrate(db: Db, all: Migration[] = migrations): Promise<number[]> {
  for (;;) {
    const applied = await db.withAdvisoryLock(migrationLock, async () => {
      // Inside the lock: concurrent CREATE TABLE IF NOT EXISTS can still collide in PostgreSQL's catalog.
      await db.query(`CREATE TABLE IF NOT EXISTS schema_migrations (
        version integer PRIMARY KEY, name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())`);
      const done = new Set(
        (await db.query<{ version: number }>('SELECT version FROM schema_migrations')).map((row) => row.version),
      );
      const pending = all.filter((migration) => !done.has(migration.version)).sort((a, b) => a.version - b.version);
      for (const migration of pending) {
        await db.transaction(async (tx) => {
          for (const statement of migration.statements) await tx.query(statement);
          await tx.query('INSERT INTO schema_migrations (version, name) VALUES ($1, $2)', [migration.version, migration.name]);
        });
      }
      return pending.map((migration) => migration.version);
    });
    if (applied) return applied;
    // Another replica is migrating; wait for it rather than racing it.
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
}

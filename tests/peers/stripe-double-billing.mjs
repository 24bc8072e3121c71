// Route module of the Stripe test double (stripe-double.mjs) for dunning:
// invoices (retrieve, list, pay), their payment intents (retrieve),
// subscriptions (retrieve, update with pause_collection), and a ledger of
// charges that tests read.
//
// It is our own double because no peer here serves these endpoints:
// stripe-stateful-mock 0.0.16 (TEST-PEERS.md §3a) answers 404 to
// GET /v1/invoices, POST /v1/invoices/{id}/pay and /v1/payment_intents,
// has no PaymentMethods, and its subscriptions have no update (so no
// pause_collection); stripe-mock (Go) is not installed and is stateless,
// so a decline followed by a success, or an invoice that stays paid, or a
// debit that is processing and later succeeds or fails, cannot be shown
// with it.
//
// Behaviour follows Stripe's API reference (https://docs.stripe.com/api/invoices/pay,
// /api/invoices/list, /api/subscriptions/update, /testing) and TEST-PEERS.md §7:
//   - pay: an open (or uncollectible) invoice is charged with the
//     customer's payment method; a decline is 402 card_error card_declined
//     with a decline_code and the invoice stays open; a paid invoice
//     answers 400 "Invoice is already paid"; a void one 400 too.
//     attempt_count counts Stripe's own attempts only: a pay call does not
//     change it (as TEST-PEERS.md §7 says). paid_out_of_band=true marks the
//     invoice paid without a charge; forgive and off_session are accepted.
//   - payment methods, by Stripe's test ids: pm_card_visa succeeds;
//     pm_card_chargeCustomerFail declines every charge (card_declined,
//     generic_decline); pm_card_visa_chargeDeclined (generic_decline) and
//     pm_card_visa_chargeDeclinedInsufficientFunds (insufficient_funds)
//     decline too; decline_once (ours) declines the first charge and then
//     succeeds, as a customer who fixes the card in between; none: the
//     customer has no payment method (400 invalid_request_error).
//   - list: newest first, status/customer/subscription filters, limit
//     1..100, starting_after / ending_before cursors, has_more.
//   - subscriptions: pause_collection[behavior] keep_as_draft,
//     mark_uncollectible or void (anything else 400), optional
//     pause_collection[resumes_at]; pause_collection="" resumes.
//   - payment intents (https://docs.stripe.com/api/payment_intents/object,
//     /api/payment_intents/retrieve, /payments/paymentintents/lifecycle):
//     every invoice has one, named by its payment_intent field (an id, as
//     in API versions before 2025-03-31.basil, which moved it under the
//     invoice's payments); GET /v1/payment_intents/{id} retrieves it
//     (404 resource_missing for an unknown id). Its status follows the
//     invoice's payments: requires_payment_method while unpaid (a decline
//     sets last_payment_error with the card_error's code and decline_code),
//     succeeded when paid, canceled when the invoice is voided
//     (cancellation_reason void_invoice).
//   - API versions (the request's Stripe-Version): from 2025-03-31.basil
//     (https://docs.stripe.com/changelog/basil/2025-03-31/add-support-for-multiple-partial-payments-on-invoices)
//     an invoice has no payment_intent, charge, paid nor paid_out_of_band,
//     and its subscription is parent.subscription_details.subscription
//     (https://docs.stripe.com/changelog/basil/2025-03-31/adds-new-parent-field-to-invoicing-objects);
//     its payment intents are listed by GET /v1/invoice_payments?invoice=
//     (https://docs.stripe.com/api/invoice-payment/list: newest first, an
//     invoice_payment per intent, is_default for the invoice's own, its
//     payment {type: payment_intent, payment_intent: id}, status open, paid
//     or canceled), which this double serves whatever the version.
//   - bank debits, by Stripe's SEPA Direct Debit test PaymentMethods
//     (https://docs.stripe.com/billing/subscriptions/sepa-debit, "Test the
//     integration"): pm_success_de and pm_successDelayed_de end processing
//     as succeeded, pm_failed_de and pm_failedDelayed_de as
//     requires_payment_method. A pay with one of them is accepted (200)
//     but leaves the invoice open and its intent processing, with a
//     pending charge, until POST /__double/billing/settle says the debit
//     is over (Stripe settles test debits after a delay of its own; the
//     double waits to be told, so that a test controls the days between).
//     A failed debit sets last_payment_error (code
//     payment_method_provider_decline, "declined by the issuer or
//     customer" in Stripe's error codes; the type card_error and the
//     message are the double's choice, as Stripe documents no error
//     object for a failed test debit) and fails the charge; a succeeded
//     one pays the invoice. A pay while the intent is processing is
//     refused: 400 invalid_request_error payment_intent_unexpected_state,
//     "The PaymentIntent's state was incompatible with the operation you
//     were trying to perform." (Stripe documents that code and text at
//     https://docs.stripe.com/error-codes; its pay reference gives no
//     answer of its own for this case). Within 24 h the same
//     Idempotency-Key is answered from the store instead, as Stripe does.
//   Idempotent replay and 429s come from stripe-double.mjs (every POST
//   with a key is answered from its store; POST /__double/ratelimit).
//
// Control endpoints (no auth, /__double/billing/...):
//   POST seed         {"invoices":[{customer, subscription, amount_due,
//                     currency, payment_method, attempt_count, status,
//                     next_payment_attempt, created}], "count":N}: make
//                     invoices (count copies of invoices[0] when given);
//                     subscriptions named are created when missing.
//                     Answers {"ids":[...]}.
//   POST payment_method {"customer":..., "payment_method":...}
//   POST pay_out_of_band {"invoice":...}: the customer pays on the hosted
//                     invoice page (a charge outside apexops).
//   POST void         {"invoice":...}
//   POST settle       {"invoice":..., "outcome":"succeeded"|"failed",
//                     "invoice_paid":true}: the bank debit of the invoice's
//                     processing intent is over; outcome defaults to the
//                     payment method's (above). With "invoice_paid":false
//                     a succeeded intent leaves the invoice open for now
//                     (Stripe marks it paid shortly after); a later settle
//                     of that invoice marks it paid. Answers the intent.
//   POST forget_idempotency: Stripe forgot every key (after 24 h).
//   GET  charges      the ledger: [{id, invoice, amount, currency, status,
//                     decline_code, via, idempotency_key, created}]
//                     (status pending while a debit processes)
//   GET  state        {invoices:[...], subscriptions:[...],
//                     payment_intents:[...]}
let inv, subs, pmOf, charges, order, pis, inpayIds;

export function reset() {
  inv = new Map();
  inpayIds = new Map(); // invoice id -> its InvoicePayment's id
  subs = new Map();
  pmOf = new Map(); // customer -> payment method id (behaviour)
  charges = [];
  order = []; // invoice ids, oldest first
  pis = new Map(); // payment intents by id
}
reset();

const DECLINES = {
  pm_card_chargeCustomerFail: 'generic_decline',
  pm_card_visa_chargeDeclined: 'generic_decline',
  pm_card_visa_chargeDeclinedInsufficientFunds: 'insufficient_funds',
};
const SUCCEEDS = new Set(['pm_card_visa', 'pm_card_mastercard']);
// SEPA Direct Debit test PaymentMethods: how the processing debit ends
const DEBITS = {
  pm_success_de: 'succeeded',
  pm_successDelayed_de: 'succeeded',
  pm_failed_de: 'failed',
  pm_failedDelayed_de: 'failed',
};

function makeSubscription(api, id, customer) {
  const s = { id, object: 'subscription', customer, status: 'active', pause_collection: null, created: api.now(),
    collection_method: 'charge_automatically', livemode: false, metadata: {} };
  subs.set(id, s);
  return s;
}

function makeInvoice(api, spec) {
  const id = spec.id || api.newId('in');
  const created = spec.created ?? api.now();
  const amount = +(spec.amount_due ?? 4900);
  const status = spec.status || 'open';
  const i = { id, object: 'invoice', customer: spec.customer, subscription: spec.subscription ?? null,
    status, amount_due: amount, amount_paid: status === 'paid' ? amount : 0, amount_remaining: status === 'paid' ? 0 : amount,
    currency: spec.currency || 'usd', attempt_count: +(spec.attempt_count ?? 1), attempted: +(spec.attempt_count ?? 1) > 0,
    next_payment_attempt: spec.next_payment_attempt ?? null, paid: status === 'paid', paid_out_of_band: false,
    collection_method: 'charge_automatically', auto_advance: true, created, livemode: false,
    hosted_invoice_url: `https://invoice.stripe.com/i/${id}`,
    status_transitions: { finalized_at: created, paid_at: status === 'paid' ? created : null, voided_at: null, marked_uncollectible_at: null },
    charge: null, payment_intent: null, metadata: {} };
  if (spec.subscription && !subs.has(spec.subscription)) makeSubscription(api, spec.subscription, spec.customer);
  if (spec.payment_method) pmOf.set(spec.customer, spec.payment_method);
  i.payment_intent = makeIntent(api, i).id;
  inv.set(id, i);
  order.push(id);
  return i;
}

// The invoice's PaymentIntent, made when it is finalized (pre-basil shape).
function makeIntent(api, i) {
  const pi = { id: api.newId('pi'), object: 'payment_intent', amount: i.amount_due, amount_received: i.status === 'paid' ? i.amount_due : 0,
    currency: i.currency, customer: i.customer, invoice: i.id, status: i.status === 'paid' ? 'succeeded' : 'requires_payment_method',
    payment_method: null, payment_method_types: ['card', 'sepa_debit'], last_payment_error: null, latest_charge: null,
    canceled_at: null, cancellation_reason: null, capture_method: 'automatic', confirmation_method: 'automatic',
    created: i.created, livemode: false, metadata: {} };
  pis.set(pi.id, pi);
  return pi;
}
const intentOf = (i) => pis.get(i.payment_intent);

const basil = (api) => String(api.version || '') >= '2025-03-31';

// The invoice as the request's API version shows it.
function invoiceView(api, i) {
  if (!basil(api)) return i;
  const { payment_intent, charge, paid, paid_out_of_band, subscription, ...v } = i;
  v.parent = subscription
    ? { type: 'subscription_details', quote_details: null, subscription_details: { metadata: {}, subscription } }
    : null;
  return v;
}

// The invoice's InvoicePayment: one per invoice here, as every invoice has
// one payment intent; its id is stable.
function invoicePayment(api, i) {
  if (!inpayIds.has(i.id)) inpayIds.set(i.id, api.newId('inpay'));
  const pi = intentOf(i);
  const status = i.status === 'paid' ? 'paid' : pi && pi.status === 'canceled' ? 'canceled' : 'open';
  return { id: inpayIds.get(i.id), object: 'invoice_payment', amount_paid: i.status === 'paid' ? i.amount_paid : null,
    amount_requested: i.amount_due, created: i.created, currency: i.currency, invoice: i.id, is_default: true, livemode: false,
    payment: { type: 'payment_intent', payment_intent: i.payment_intent }, status,
    status_transitions: { canceled_at: status === 'canceled' ? pi.canceled_at : null, paid_at: i.status_transitions.paid_at } };
}

function listInvoicePayments(api, q) {
  api.checkParams(q, ['invoice', 'limit', 'starting_after', 'ending_before', 'payment', 'status', 'created', 'expand']);
  const limit = api.limitOf(q);
  let all = order.slice().reverse().map((id) => inv.get(id)); // newest first
  if (q.invoice !== undefined) all = all.filter((i) => i.id === q.invoice);
  let out = all.map((i) => invoicePayment(api, i));
  if (q.status !== undefined) out = out.filter((x) => x.status === q.status);
  if (q.payment?.type !== undefined) out = out.filter((x) => x.payment.type === q.payment.type);
  if (q.payment?.payment_intent !== undefined) out = out.filter((x) => x.payment.payment_intent === q.payment.payment_intent);
  if (q.starting_after !== undefined) out = out.slice(out.findIndex((x) => x.id === q.starting_after) + 1);
  return api.list('/v1/invoice_payments', out, limit);
}

function getInvoice(api, id) {
  const i = inv.get(id);
  if (!i) throw api.missing('invoice', id, 'invoice');
  return i;
}

function charge(api, i, via, key) {
  const pm = pmOf.get(i.customer) || 'pm_card_visa';
  const c = { id: api.newId('ch'), invoice: i.id, amount: i.amount_remaining, currency: i.currency, status: 'succeeded',
    decline_code: null, via, payment_method: pm, idempotency_key: key || null, created: api.now() };
  let decline = DECLINES[pm];
  if (pm === 'decline_once') {
    decline = 'generic_decline';
    pmOf.set(i.customer, 'pm_card_visa'); // the next charge succeeds
  } else if (DEBITS[pm]) {
    c.status = 'pending'; // a bank debit: processing for days
    decline = null;
  } else if (!decline && !SUCCEEDS.has(pm)) {
    decline = 'generic_decline';
  }
  if (decline) { c.status = 'failed'; c.decline_code = decline; }
  charges.push(c);
  const pi = intentOf(i);
  if (pi) {
    pi.payment_method = pm;
    pi.latest_charge = c.id;
    if (c.status === 'pending') { pi.status = 'processing'; pi.last_payment_error = null; }
    else if (c.status === 'failed') {
      pi.status = 'requires_payment_method';
      pi.last_payment_error = { type: 'card_error', code: 'card_declined', decline_code: decline, message: 'Your card was declined.',
        charge: c.id, payment_method: { id: pm, object: 'payment_method', type: 'card' } };
    } else { pi.status = 'succeeded'; pi.amount_received = c.amount; pi.last_payment_error = null; }
  }
  return c;
}

// The processing debit of i is over: outcome 'succeeded' or 'failed'.
function settle(api, i, outcome, invoicePaid) {
  const pi = intentOf(i);
  if (!pi) return [404, { error: 'the invoice has no payment intent' }];
  if (pi.status === 'succeeded' && i.status === 'open') { // marked paid later
    markPaid(api, i, pi.latest_charge, false);
    return [200, pi];
  }
  if (pi.status !== 'processing') return [409, { error: `the payment intent is ${pi.status}, not processing` }];
  const c = charges.find((x) => x.id === pi.latest_charge);
  const result = outcome || DEBITS[pi.payment_method] || 'succeeded';
  if (result === 'failed') {
    if (c) { c.status = 'failed'; c.decline_code = null; }
    pi.status = 'requires_payment_method';
    pi.last_payment_error = { type: 'card_error', code: 'payment_method_provider_decline',
      message: "The payment was declined by the customer's bank.", charge: pi.latest_charge, payment_method_type: 'sepa_debit',
      payment_method: { id: pi.payment_method, object: 'payment_method', type: 'sepa_debit' } };
  } else if (result === 'succeeded') {
    if (c) c.status = 'succeeded';
    pi.status = 'succeeded';
    pi.amount_received = pi.amount;
    if (invoicePaid !== false) markPaid(api, i, pi.latest_charge, false);
  } else {
    return [400, { error: `outcome must be succeeded or failed, not ${result}` }];
  }
  return [200, pi];
}

function markPaid(api, i, chargeId, outOfBand) {
  i.status = 'paid';
  i.paid = true;
  i.amount_paid = i.amount_due;
  i.amount_remaining = 0;
  i.next_payment_attempt = null;
  i.paid_out_of_band = !!outOfBand;
  i.charge = chargeId;
  i.status_transitions.paid_at = api.now();
}

function pay(api, i, body, key) {
  api.checkParams(body, ['forgive', 'off_session', 'paid_out_of_band', 'payment_method', 'source', 'mandate', 'expand']);
  if (i.status === 'paid')
    throw new api.StripeError(400, 'invalid_request_error', 'Invoice is already paid');
  if (i.status === 'void')
    throw new api.StripeError(400, 'invalid_request_error', 'This invoice is no longer payable because it has been voided.', 'invoice_not_open');
  if (i.status === 'draft')
    throw new api.StripeError(400, 'invalid_request_error', 'This invoice must be finalized before it can be paid.', 'invoice_not_open');
  if (intentOf(i)?.status === 'processing') // a bank debit not over yet
    throw new api.StripeError(400, 'invalid_request_error',
      "The PaymentIntent's state was incompatible with the operation you were trying to perform.", 'payment_intent_unexpected_state');
  if (body.paid_out_of_band === 'true') { markPaid(api, i, null, true); return i; }
  if (body.payment_method) pmOf.set(i.customer, body.payment_method);
  if (pmOf.get(i.customer) === 'none')
    throw new api.StripeError(400, 'invalid_request_error', 'This customer has no attached payment source or default payment method. Please consider adding a default payment method.');
  const c = charge(api, i, 'api_pay', key);
  if (c.status === 'failed') {
    throw new api.StripeError(402, 'card_error', 'Your card was declined.', 'card_declined', '',
      { decline_code: c.decline_code, charge: c.id, doc_url: 'https://stripe.com/docs/error-codes/card-declined' });
  }
  if (c.status === 'pending') return i; // accepted: the invoice stays open while the debit processes
  markPaid(api, i, c.id, false);
  return i;
}

function listInvoices(api, q) {
  api.checkParams(q, ['status', 'customer', 'subscription', 'limit', 'starting_after', 'ending_before', 'created', 'collection_method', 'expand']);
  if (q.status !== undefined && !['draft', 'open', 'paid', 'uncollectible', 'void'].includes(q.status))
    throw new api.StripeError(400, 'invalid_request_error', `Invalid status: must be one of draft, open, paid, uncollectible, or void`, 'parameter_invalid_string', 'status');
  const limit = api.limitOf(q);
  let all = order.slice().reverse().map((id) => inv.get(id)); // newest first
  if (q.status !== undefined) all = all.filter((i) => i.status === q.status);
  if (q.customer !== undefined) all = all.filter((i) => i.customer === q.customer);
  if (q.subscription !== undefined) all = all.filter((i) => i.subscription === q.subscription);
  if (q.starting_after !== undefined) {
    const k = all.findIndex((i) => i.id === q.starting_after);
    if (k < 0 && !inv.has(q.starting_after)) throw api.missing('invoice', q.starting_after, 'starting_after');
    all = all.slice(k + 1);
  } else if (q.ending_before !== undefined) {
    const k = all.findIndex((i) => i.id === q.ending_before);
    if (k < 0 && !inv.has(q.ending_before)) throw api.missing('invoice', q.ending_before, 'ending_before');
    all = all.slice(Math.max(0, k - limit), Math.max(0, k));
  }
  return api.list('/v1/invoices', all.map((i) => invoiceView(api, i)), limit);
}

function updateSubscription(api, s, body) {
  api.checkParams(body, ['pause_collection', 'metadata', 'expand', 'proration_behavior', 'cancel_at_period_end']);
  if (body.pause_collection !== undefined) {
    const pc = body.pause_collection;
    if (pc === '') s.pause_collection = null;
    else if (typeof pc === 'object' && pc !== null) {
      if (!['keep_as_draft', 'mark_uncollectible', 'void'].includes(pc.behavior))
        throw new api.StripeError(400, 'invalid_request_error',
          `Invalid pause_collection[behavior]: must be one of keep_as_draft, mark_uncollectible, or void`, 'parameter_invalid_string', 'pause_collection[behavior]');
      s.pause_collection = { behavior: pc.behavior, resumes_at: pc.resumes_at !== undefined ? +pc.resumes_at : null };
    } else {
      throw new api.StripeError(400, 'invalid_request_error', 'Invalid pause_collection: must be an object or an empty string', 'parameter_invalid_string', 'pause_collection');
    }
  }
  if (body.metadata) s.metadata = { ...s.metadata, ...body.metadata };
  return s;
}

export function route(method, path, q, body, api, key) {
  let m;
  if (path === '/v1/invoices' && method === 'GET') return listInvoices(api, q);
  if (path === '/v1/invoice_payments' && method === 'GET') return listInvoicePayments(api, q);
  if ((m = path.match(/^\/v1\/invoices\/([^/]+)$/)) && method === 'GET') {
    api.checkParams(q, ['expand']);
    return invoiceView(api, getInvoice(api, decodeURIComponent(m[1])));
  }
  if ((m = path.match(/^\/v1\/invoices\/([^/]+)\/pay$/)) && method === 'POST')
    return invoiceView(api, pay(api, getInvoice(api, decodeURIComponent(m[1])), body, key));
  if ((m = path.match(/^\/v1\/payment_intents\/([^/]+)$/)) && method === 'GET') {
    api.checkParams(q, ['expand', 'client_secret']);
    const id = decodeURIComponent(m[1]);
    const pi = pis.get(id);
    if (!pi) throw api.missing('payment_intent', id, 'intent');
    return pi;
  }
  if ((m = path.match(/^\/v1\/subscriptions\/([^/]+)$/))) {
    const id = decodeURIComponent(m[1]);
    const s = subs.get(id);
    if (!s) throw api.missing('subscription', id, 'subscription');
    if (method === 'GET') return s;
    if (method === 'POST') return updateSubscription(api, s, body);
  }
  return undefined;
}

// /__double/billing/... (see the header); returns [status, body] or undefined.
export function control(method, path, body, api) {
  const m = path.match(/^\/__double\/billing\/([a-z_]+)$/);
  if (!m) return undefined;
  const what = m[1];
  if (what === 'seed' && method === 'POST') {
    const specs = body.invoices || [];
    const ids = [];
    if (body.count !== undefined) for (let k = 0; k < +body.count; k++) ids.push(makeInvoice(api, { ...specs[0], id: undefined }).id);
    else for (const s of specs) ids.push(makeInvoice(api, s).id);
    return [200, { ids }];
  }
  if (what === 'payment_method' && method === 'POST') { pmOf.set(body.customer, body.payment_method); return [200, { ok: true }]; }
  if (what === 'pay_out_of_band' && method === 'POST') {
    const i = inv.get(body.invoice);
    if (!i) return [404, { error: 'no such invoice' }];
    const c = { id: api.newId('ch'), invoice: i.id, amount: i.amount_remaining, currency: i.currency, status: 'succeeded',
      decline_code: null, via: 'hosted_invoice_page', payment_method: 'pm_card_visa', idempotency_key: null, created: api.now() };
    charges.push(c);
    markPaid(api, i, c.id, false);
    const pi = intentOf(i);
    if (pi) Object.assign(pi, { status: 'succeeded', amount_received: pi.amount, latest_charge: c.id, last_payment_error: null });
    return [200, i];
  }
  if (what === 'void' && method === 'POST') {
    const i = inv.get(body.invoice);
    if (!i) return [404, { error: 'no such invoice' }];
    i.status = 'void';
    i.status_transitions.voided_at = api.now();
    const pi = intentOf(i);
    if (pi && pi.status !== 'succeeded') Object.assign(pi, { status: 'canceled', canceled_at: api.now(), cancellation_reason: 'void_invoice' });
    return [200, i];
  }
  if (what === 'settle' && method === 'POST') {
    const i = inv.get(body.invoice);
    if (!i) return [404, { error: 'no such invoice' }];
    return settle(api, i, body.outcome, body.invoice_paid);
  }
  if (what === 'forget_idempotency' && method === 'POST') { const n = api.state.idem.size; api.state.idem.clear(); return [200, { forgotten: n }]; }
  if (what === 'charges' && method === 'GET') return [200, charges];
  if (what === 'state' && method === 'GET')
    return [200, { invoices: order.map((id) => inv.get(id)), subscriptions: [...subs.values()], payment_intents: [...pis.values()] }];
  return [404, { error: `unknown control ${method} ${path}` }];
}

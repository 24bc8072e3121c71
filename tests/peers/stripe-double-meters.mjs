// Route module of the Stripe test double (stripe-double.mjs) for usage sync (billing meter events).
// route() returns the answer object, throws api.StripeError, or returns
// undefined when the request is not for this module.
//
// Our own double, because neither stripe-stateful-mock (0.0.16) nor
// stripe-mock has Billing Meter Events. It follows Stripe's documented
// behaviour of POST /v1/billing/meter_events
// (https://docs.stripe.com/api/billing/meter-event/create, TEST-PEERS.md §7):
//   - event_name (<= 100 chars) and payload are required; the payload
//     needs stripe_customer_id and value (the default meter mapping), and
//     value must be a whole number;
//   - identifier (<= 100 chars) is optional and unique over a rolling
//     period (we keep every one for the double's life): a reused one is
//     400 invalid_request_error "An event already exists with identifier
//     ..." with Stripe-Should-Retry: false, whatever the other parameters;
//   - timestamp (unix seconds) defaults to now and must lie within the past
//     35 days and at most 5 minutes ahead;
//   - the answer is a billing.meter_event object; Idempotency-Key replay is
//     the main double's (same answer, Idempotent-Replayed: true);
//   - POST /v1/billing/meter_event_adjustments (type=cancel, event_name,
//     cancel[identifier]) cancels an event received within the last 24
//     hours (https://docs.stripe.com/api/billing/meter-event-adjustment);
//     a cancelled event no longer counts in the sums below.
// Control endpoints (no auth):
//   GET  /__double/meter_events       every accepted event, in order
//   GET  /__double/meter_events/sums  {"<customer> <event_name>": total}
//   POST /__double/idempotency/expire forgets every Idempotency-Key (a day
//                                     later), identifiers stay
//   POST /__double/meters/clock       {"now": unix seconds} sets the double's
//                                     clock for the timestamp window
//                                     ({"now": null}: the real clock)
let events, ids, cancelled, clockOffset = 0;

export function reset(api) {
  events = [];
  ids = new Map();
  cancelled = new Set();
  clockOffset = 0;
}

const now = () => Math.floor(Date.now() / 1000) + clockOffset;

export function control(method, path, body, api) {
  // Stripe keeps idempotency keys about 24 hours, identifiers at least as
  // long: this forgets the keys only, as a day later
  if (path === '/__double/idempotency/expire' && method === 'POST') { api.state.idem.clear(); return { ok: true }; }
  if (path === '/__double/meter_events' && method === 'GET') return events.filter((e) => !cancelled.has(e.identifier));
  if (path === '/__double/meter_events/sums' && method === 'GET') {
    const sums = {};
    for (const e of events) {
      if (cancelled.has(e.identifier)) continue;
      const k = `${e.payload.stripe_customer_id} ${e.event_name}`;
      sums[k] = (sums[k] || 0) + Number(e.payload.value);
    }
    return sums;
  }
  if (path === '/__double/meters/clock' && method === 'POST') {
    const o = body || {};
    clockOffset = o.now == null ? 0 : Math.floor(+o.now - Date.now() / 1000);
    return { ok: true, now: now() };
  }
  return undefined;
}

function adjust(body, api) {
  const E = api.StripeError;
  api.checkParams(body, ['event_name', 'type', 'cancel']);
  if (!body.event_name) throw new E(400, 'invalid_request_error', 'Missing required param: event_name.', 'parameter_missing', 'event_name');
  if (body.type !== 'cancel')
    throw new E(400, 'invalid_request_error', 'Invalid type: must be cancel.', 'parameter_invalid_string', 'type');
  const id = body.cancel?.identifier;
  if (!id) throw new E(400, 'invalid_request_error', 'Missing required param: cancel[identifier].', 'parameter_missing', 'cancel[identifier]');
  const ev = ids.get(id);
  if (!ev || ev.event_name !== body.event_name)
    throw new E(400, 'invalid_request_error', `No meter event with identifier ${id} for event_name ${body.event_name}.`, 'resource_missing', 'cancel[identifier]');
  if (now() - ev.created > 86400)
    throw new E(400, 'invalid_request_error', 'Meter events can only be cancelled within 24 hours of being received.', undefined, 'cancel[identifier]');
  cancelled.add(id);
  return { object: 'billing.meter_event_adjustment', event_name: ev.event_name, livemode: false, status: 'pending', type: 'cancel', cancel: { identifier: id } };
}

export function route(method, path, q, body, api) {
  if (path === '/v1/billing/meter_event_adjustments' && method === 'POST') return adjust(body, api);
  if (path !== '/v1/billing/meter_events') return undefined;
  const E = api.StripeError;
  if (method !== 'POST')
    throw new E(404, 'invalid_request_error', `Unrecognized request URL (${method}: ${path}).`);
  api.checkParams(body, ['event_name', 'payload', 'identifier', 'timestamp']);
  const missing = (p) => new E(400, 'invalid_request_error', `Missing required param: ${p}.`, 'parameter_missing', p);
  if (body.event_name === undefined || body.event_name === '') throw missing('event_name');
  if (String(body.event_name).length > 100)
    throw new E(400, 'invalid_request_error', 'Invalid string: event_name must be at most 100 characters.', 'string_too_long', 'event_name');
  if (typeof body.payload !== 'object' || body.payload === null) throw missing('payload');
  if (!body.payload.stripe_customer_id)
    throw new E(400, 'invalid_request_error', 'Missing required param: payload[stripe_customer_id].', 'parameter_missing', 'payload[stripe_customer_id]');
  if (body.payload.value === undefined || body.payload.value === '')
    throw new E(400, 'invalid_request_error', 'Missing required param: payload[value].', 'parameter_missing', 'payload[value]');
  if (!/^\d+$/.test(String(body.payload.value)))
    throw new E(400, 'invalid_request_error', `The value '${body.payload.value}' in payload[value] must be a whole number.`, 'parameter_invalid_integer', 'payload[value]');
  if (body.identifier !== undefined && (body.identifier === '' || String(body.identifier).length > 100))
    throw new E(400, 'invalid_request_error', 'Invalid string: identifier must be 1 to 100 characters.', 'string_too_long', 'identifier');
  let ts = now();
  if (body.timestamp !== undefined) {
    if (!/^\d+$/.test(String(body.timestamp)))
      throw new E(400, 'invalid_request_error', `Invalid integer: ${body.timestamp}`, 'parameter_invalid_integer', 'timestamp');
    ts = Number(body.timestamp);
    if (ts < now() - 35 * 86400 || ts > now() + 300)
      throw new E(400, 'invalid_request_error',
        'Timestamp must be within the past 35 days and not more than 5 minutes in the future.', 'timestamp_out_of_range', 'timestamp');
  }
  const identifier = body.identifier ?? api.newId('mevt');
  if (ids.has(identifier)) {
    const err = new E(400, 'invalid_request_error', `An event already exists with identifier ${identifier}.`, undefined, 'identifier');
    err.headers = { 'stripe-should-retry': 'false' };
    throw err;
  }
  const ev = { object: 'billing.meter_event', created: now(), event_name: String(body.event_name), identifier,
    livemode: false, payload: { ...body.payload }, timestamp: ts };
  ids.set(identifier, ev);
  events.push(ev);
  return ev;
}

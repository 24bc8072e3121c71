// A Stripe TEST DOUBLE OF OUR OWN. It exists because stripe-stateful-mock
// (TEST-PEERS.md §3a), the third-party peer we use for customers and cards,
// lacks these endpoints: bank-account tokens (btok_*), the sources list
// GET /v1/customers/{id}/sources?object=..., customer update with
// default_source validation of bank sources, PaymentMethods (create,
// retrieve, attach, list; type sepa_debit from an IBAN, with the billing
// name and email SEPA requires), and fault injection. It follows
// Stripe's API reference (https://docs.stripe.com/api): form-encoded bodies
// with nested keys (a[b]=v, a[0]=v), Bearer or Basic auth with an sk_test_
// key, Idempotency-Key replay with the same parameters and 400
// idempotency_error with different ones, errors shaped
// {"error":{"type","code","message","param"}}, list objects
// {"object":"list","data":[...],"has_more":false,"url":...}, 404
// resource_missing for unknown ids and tokens, 400 parameter_unknown for
// unknown parameters. Object ids are deterministic (a counter reset by
// POST /__double/reset) so that two runs can be compared request by request.
//
// Control endpoints (no auth): POST /__double/reset (state + capture log),
// GET /__double/requests (every API request seen: method, path, raw query
// and body pairs, relevant headers), POST /__double/faults with JSON
// {"count":N,"status":500,"retryAfter":"1","shouldRetry":"true"} (the next
// N API requests get that status; a fault answer is not recorded in
// idempotency state); {"count":N,"delayMs":MS} without a status answers the
// next N requests normally but MS late (a client-side timeout after Stripe
// acted). Restricted test keys (rk_test_) are accepted like sk_test_ ones.
// Route modules may export control(method, path, body, api) for control
// endpoints of their own under /__double/.
//
// POST /__double/ratelimit with JSON {"rps":N,"burst":B,"shouldRetry":"false"}
// (rps 0: off) applies a token bucket to every API request, as Stripe's own
// limiter does: over the rate, 429 with error code rate_limit (and the
// Stripe-Should-Retry header when given). GET /__double/stats counts API
// requests and throttled ones.
//
// Endpoints beyond customers and payment methods live in route modules
// (stripe-double-*.mjs below): each exports route(method, path, q, body,
// api), returning the answer or undefined when the path is not its own,
// and may export reset(api).
//
// env: PORT (default 8112). Binds 127.0.0.1 only.
import http from 'node:http';
import crypto from 'node:crypto';
import * as meters from './stripe-double-meters.mjs';
import * as billing from './stripe-double-billing.mjs';

const modules = [meters, billing];

const PORT = +(process.env.PORT ?? 8112); // 0: a free port, printed

let state, log, faults;
function reset() {
  state = { seq: 0, customers: new Map(), pms: new Map(), idem: new Map() };
  log = [];
  faults = [];
  stats = { requests: 0, throttled: 0 };
  bucket = { rps: 0, burst: 1, tokens: 1, at: 0, shouldRetry: undefined };
  for (const mod of modules) mod.reset?.(api);
}
let stats, bucket;
const api = {
  get state() { return state; },
  newId: (prefix) => newId(prefix), now: () => now(),
  StripeError: null, missing: null, checkParams: null, list: null, limitOf: null,
  version: '2023-10-16', // the request's Stripe-Version (the account's default when none)
};

const newId = (prefix) => `${prefix}_D${String(++state.seq).padStart(13, '0')}`;
const now = () => Math.floor(Date.now() / 1000);

class StripeError extends Error {
  constructor(status, type, message, code, param, extra) {
    super(message);
    Object.assign(this, { status, type, code, param, extra });
  }
}
const missing = (what, id, param) =>
  new StripeError(404, 'invalid_request_error', `No such ${what}: '${id}'`, 'resource_missing', param);

// Form/query decoding as Stripe's servers read it (qs-like nesting).
function decodePairs(raw) {
  if (!raw) return [];
  return raw.split('&').filter(Boolean).map((tok) => {
    const i = tok.indexOf('=');
    const k = i < 0 ? tok : tok.slice(0, i);
    const v = i < 0 ? '' : tok.slice(i + 1);
    const dec = (s) => decodeURIComponent(s.replace(/\+/g, ' '));
    return [dec(k), dec(v), tok];
  });
}
function nest(pairs) {
  const root = {};
  for (const [key, value] of pairs) {
    const m = key.match(/^([^[\]]+)((?:\[[^[\]]*\])*)$/);
    if (!m) throw new StripeError(400, 'invalid_request_error', `Invalid parameter name: ${key}`, 'parameter_invalid_string', key);
    const path = [m[1], ...[...m[2].matchAll(/\[([^[\]]*)\]/g)].map((x) => x[1])];
    let o = root;
    for (let i = 0; i < path.length - 1; i++) {
      const seg = path[i];
      if (typeof o[seg] !== 'object' || o[seg] === null) o[seg] = /^\d+$/.test(path[i + 1]) || path[i + 1] === '' ? [] : {};
      o = o[seg];
    }
    const last = path[path.length - 1];
    if (Array.isArray(o) && last === '') o.push(value);
    else o[last] = value;
  }
  return root;
}

function checkParams(params, allowed) {
  for (const k of Object.keys(params)) {
    if (!allowed.includes(k)) throw new StripeError(400, 'invalid_request_error', `Received unknown parameter: ${k}`, 'parameter_unknown', k);
  }
}
function limitOf(q) {
  if (q.limit === undefined) return 10;
  const n = Number(q.limit);
  if (!/^\d+$/.test(q.limit) || n < 1 || n > 100)
    throw new StripeError(400, 'invalid_request_error', 'Invalid integer: ' + q.limit + '; must be between 1 and 100', 'parameter_invalid_integer', 'limit');
  return n;
}
function list(url, items, limit) {
  return { object: 'list', data: items.slice(0, limit), has_more: items.length > limit, url };
}
const expands = (q, what) => Array.isArray(q.expand) && q.expand.includes(what);

function customerView(c, q) {
  const out = { ...c };
  delete out._sources;
  if (expands(q, 'sources')) out.sources = list(`/v1/customers/${c.id}/sources`, c._sources, 10);
  return out;
}
function getCustomer(id) {
  const c = state.customers.get(id);
  if (!c) throw missing('customer', id, 'id');
  return c;
}

function makeSource(cus, token) {
  // Stripe's documented test tokens (https://docs.stripe.com/testing).
  if (token === 'tok_chargeDeclined')
    throw new StripeError(402, 'card_error', 'Your card was declined.', 'card_declined', '', { decline_code: 'generic_decline' });
  const cards = { tok_visa: ['Visa', '4242'], tok_mastercard: ['MasterCard', '4444'], tok_amex: ['American Express', '8431'] };
  if (cards[token]) {
    const [brand, last4] = cards[token];
    return { id: newId('card'), object: 'card', brand, last4, country: 'US', exp_month: 12, exp_year: new Date().getUTCFullYear() + 1,
      funding: 'credit', fingerprint: crypto.createHash('sha1').update(token).digest('hex').slice(0, 16), customer: cus.id, metadata: {} };
  }
  if (token === 'btok_us_verified' || token === 'btok_us') {
    return { id: newId('ba'), object: 'bank_account', account_holder_name: null, account_holder_type: null, bank_name: 'STRIPE TEST BANK',
      country: 'US', currency: 'usd', last4: '6789', routing_number: '110000000', customer: cus.id,
      status: token === 'btok_us_verified' ? 'verified' : 'new', metadata: {} };
  }
  // btok_sepa_debit is not among Stripe's test tokens: SEPA debits are
  // Sources (src_..., type sepa_debit) or PaymentMethods made from an IBAN.
  // Stripe answers an unknown token like this:
  throw new StripeError(400, 'invalid_request_error', `No such token: '${token}'`, 'resource_missing', 'source');
}

// ISO 13616 check digits: move the first four characters to the end,
// letters to 10..35, the number mod 97 must be 1.
function ibanValid(iban) {
  const s = String(iban).replace(/\s+/g, '').toUpperCase();
  if (!/^[A-Z]{2}\d{2}[A-Z0-9]{10,30}$/.test(s)) return false;
  const digits = (s.slice(4) + s.slice(0, 4)).replace(/[A-Z]/g, (c) => String(c.charCodeAt(0) - 55));
  let rem = 0;
  for (const d of digits) rem = (rem * 10 + Number(d)) % 97;
  return rem === 1;
}

// POST /v1/payment_methods (https://docs.stripe.com/api/payment_methods/create).
// Only type sepa_debit is modelled; SEPA needs billing_details name and email.
function createPaymentMethod(body) {
  checkParams(body, ['type', 'sepa_debit', 'billing_details', 'metadata', 'expand']);
  if (!body.type) throw new StripeError(400, 'invalid_request_error', 'Missing required param: type.', 'parameter_missing', 'type');
  if (body.type !== 'sepa_debit')
    throw new StripeError(400, 'invalid_request_error', `The double models only type sepa_debit, not '${body.type}'.`, 'parameter_invalid_string', 'type');
  const iban = body.sepa_debit?.iban;
  if (!iban) throw new StripeError(400, 'invalid_request_error', 'Missing required param: sepa_debit[iban].', 'parameter_missing', 'sepa_debit[iban]');
  if (!ibanValid(iban)) throw new StripeError(400, 'invalid_request_error', 'The IBAN you provided appears to be invalid.', 'invalid_bank_account_iban', 'sepa_debit[iban]');
  const bd = body.billing_details || {};
  for (const k of ['name', 'email'])
    if (!bd[k]) throw new StripeError(400, 'invalid_request_error',
      `Missing required param: billing_details[${k}]. SEPA Direct Debit requires the account holder's name and email.`, 'parameter_missing', `billing_details[${k}]`);
  const clean = String(iban).replace(/\s+/g, '').toUpperCase();
  const pm = { id: newId('pm'), object: 'payment_method', type: 'sepa_debit', created: now(), customer: null, livemode: false,
    billing_details: { address: { city: null, country: null, line1: null, line2: null, postal_code: null, state: null },
      email: bd.email, name: bd.name, phone: bd.phone ?? null },
    sepa_debit: { bank_code: clean.slice(4, 12), branch_code: '', country: clean.slice(0, 2),
      fingerprint: crypto.createHash('sha1').update(clean).digest('hex').slice(0, 16), last4: clean.slice(-4),
      generated_from: { charge: null, setup_attempt: null } },
    metadata: body.metadata || {} };
  state.pms.set(pm.id, pm);
  return pm;
}
function getPaymentMethod(id) {
  const pm = state.pms.get(id);
  if (!pm) throw missing('PaymentMethod', id, 'payment_method');
  return pm;
}

Object.assign(api, { StripeError, missing, checkParams: (p, a) => checkParams(p, a), list: (u, i, l) => list(u, i, l),
  limitOf: (q) => limitOf(q) });
reset();

// Token bucket: true when the request may go on.
function takeToken() {
  if (!bucket.rps) return true;
  const t = Date.now() / 1000;
  bucket.tokens = Math.min(bucket.burst, bucket.tokens + (t - bucket.at) * bucket.rps);
  bucket.at = t;
  if (bucket.tokens >= 1) { bucket.tokens -= 1; return true; }
  return false;
}

function route(method, path, q, body, key) {
  let m;
  for (const mod of modules) {
    const r = mod.route?.(method, path, q, body, api, key);
    if (r !== undefined) return r;
  }
  if (path === '/v1/customers' && method === 'POST') {
    checkParams(body, ['email', 'name', 'description', 'metadata', 'phone', 'source']);
    const c = { id: newId('cus'), object: 'customer', created: now(), default_source: null, description: body.description ?? null,
      email: body.email ?? null, livemode: false, metadata: body.metadata || {}, name: body.name ?? null, phone: body.phone ?? null,
      invoice_settings: { default_payment_method: null }, _sources: [] };
    state.customers.set(c.id, c);
    if (body.source) { const s = makeSource(c, body.source); c._sources.push(s); c.default_source = s.id; }
    return customerView(c, q);
  }
  if (path === '/v1/customers' && method === 'GET') {
    checkParams(q, ['email', 'limit', 'starting_after', 'ending_before', 'created', 'expand']);
    let all = [...state.customers.values()].reverse(); // newest first
    if (q.email !== undefined) all = all.filter((c) => c.email === q.email);
    return list('/v1/customers', all.map((c) => customerView(c, {})), limitOf(q));
  }
  if ((m = path.match(/^\/v1\/customers\/([^/]+)$/))) {
    const c = getCustomer(decodeURIComponent(m[1]));
    if (method === 'GET') { checkParams(q, ['expand']); return customerView(c, q); }
    if (method === 'DELETE') { state.customers.delete(c.id); return { id: c.id, object: 'customer', deleted: true }; }
    if (method === 'POST') {
      checkParams(body, ['email', 'name', 'description', 'metadata', 'phone', 'default_source', 'expand']);
      if (body.default_source !== undefined) {
        if (!c._sources.some((s) => s.id === body.default_source)) throw missing('source', body.default_source, 'default_source');
        c.default_source = body.default_source;
      }
      for (const k of ['email', 'name', 'description', 'phone']) if (body[k] !== undefined) c[k] = body[k] === '' ? null : body[k];
      if (body.metadata) c.metadata = { ...c.metadata, ...body.metadata };
      return customerView(c, body);
    }
  }
  if (path === '/v1/payment_methods' && method === 'POST') return createPaymentMethod(body);
  if (path === '/v1/payment_methods' && method === 'GET') {
    checkParams(q, ['customer', 'type', 'limit', 'starting_after', 'ending_before', 'expand']);
    if (!q.customer) throw new StripeError(400, 'invalid_request_error', 'Missing required param: customer.', 'parameter_missing', 'customer');
    const c = getCustomer(q.customer);
    let all = [...state.pms.values()].filter((pm) => pm.customer === c.id).reverse(); // newest first
    if (q.type !== undefined) all = all.filter((pm) => pm.type === q.type);
    return list('/v1/payment_methods', all, limitOf(q));
  }
  if ((m = path.match(/^\/v1\/payment_methods\/([^/]+)$/)) && method === 'GET') return getPaymentMethod(decodeURIComponent(m[1]));
  if ((m = path.match(/^\/v1\/payment_methods\/([^/]+)\/attach$/)) && method === 'POST') {
    checkParams(body, ['customer', 'expand']);
    if (!body.customer) throw new StripeError(400, 'invalid_request_error', 'Missing required param: customer.', 'parameter_missing', 'customer');
    const pm = getPaymentMethod(decodeURIComponent(m[1]));
    const c = getCustomer(body.customer);
    if (pm.customer && pm.customer !== c.id)
      throw new StripeError(400, 'invalid_request_error', 'The payment method you provided has already been attached to a customer.', 'payment_method_unexpected_state');
    pm.customer = c.id;
    return pm;
  }
  if ((m = path.match(/^\/v1\/customers\/([^/]+)\/sources$/))) {
    const c = getCustomer(decodeURIComponent(m[1]));
    if (method === 'GET') {
      checkParams(q, ['object', 'limit', 'starting_after', 'ending_before']);
      const items = q.object ? c._sources.filter((s) => s.object === q.object) : c._sources;
      return list(`/v1/customers/${c.id}/sources`, items, limitOf(q));
    }
    if (method === 'POST') {
      checkParams(body, ['source', 'metadata', 'validate']);
      if (!body.source) throw new StripeError(400, 'invalid_request_error', 'Missing required param: source.', 'parameter_missing', 'source');
      const s = makeSource(c, body.source);
      c._sources.push(s);
      if (!c.default_source) c.default_source = s.id;
      return s;
    }
  }
  if ((m = path.match(/^\/v1\/customers\/([^/]+)\/sources\/([^/]+)$/))) {
    const c = getCustomer(decodeURIComponent(m[1]));
    const s = c._sources.find((x) => x.id === m[2]);
    if (!s) throw missing('source', m[2], 'id');
    if (method === 'GET') return s;
    if (method === 'DELETE') {
      c._sources = c._sources.filter((x) => x !== s);
      if (c.default_source === s.id) c.default_source = c._sources[0]?.id ?? null;
      return { id: s.id, object: s.object, deleted: true };
    }
  }
  throw new StripeError(404, 'invalid_request_error',
    `Unrecognized request URL (${method}: ${path}). Please see https://stripe.com/docs or we can help at https://support.stripe.com/.`);
}

function send(res, status, obj, headers = {}) {
  const body = JSON.stringify(obj);
  res.writeHead(status, { 'content-type': 'application/json', 'request-id': 'req_' + crypto.randomBytes(7).toString('hex'),
    'stripe-version': headers['stripe-version'] || '2023-10-16', ...headers });
  res.end(body);
}
function errBody(e) {
  const error = { type: e.type, message: e.message };
  if (e.code) error.code = e.code;
  if (e.param !== undefined) error.param = e.param;
  return { error: { ...error, ...(e.extra || {}) } };
}

const server = http.createServer((req, res) => {
  const chunks = [];
  req.on('data', (c) => chunks.push(c));
  req.on('end', () => {
    const raw = Buffer.concat(chunks).toString('utf8');
    const u = new URL(req.url, 'http://x');
    const path = u.pathname;
    if (path === '/__double/reset' && req.method === 'POST') { reset(); return send(res, 200, { ok: true }); }
    if (path === '/__double/requests') return send(res, 200, log);
    if (path === '/__double/faults' && req.method === 'POST') { faults.push(JSON.parse(raw || '{}')); return send(res, 200, { ok: true }); }
    if (path === '/__double/ratelimit' && req.method === 'POST') {
      const o = JSON.parse(raw || '{}');
      bucket = { rps: +o.rps || 0, burst: Math.max(1, +(o.burst ?? o.rps) || 1), tokens: Math.max(1, +(o.burst ?? o.rps) || 1),
        at: Date.now() / 1000, shouldRetry: o.shouldRetry };
      return send(res, 200, { ok: true });
    }
    if (path === '/__double/stats') return send(res, 200, stats);
    if (path === '/') return send(res, 200, { ok: true });
    // a route module's own control endpoints (/__double/...): control(method,
    // path, body, api) gets the JSON body parsed ({} when empty) and returns
    // the answer (status 200), [status, answer], or undefined when the path
    // is not its own
    if (path.startsWith('/__double/')) {
      let parsed;
      try { parsed = raw ? JSON.parse(raw) : {}; } catch { return send(res, 400, { error: 'control body is not JSON' }); }
      for (const mod of modules) {
        const r = mod.control?.(req.method, path, parsed, api);
        if (r === undefined) continue;
        if (Array.isArray(r) && r.length === 2 && typeof r[0] === 'number') return send(res, r[0], r[1]);
        return send(res, 200, r);
      }
    }

    const rawQuery = req.url.includes('?') ? req.url.slice(req.url.indexOf('?') + 1) : '';
    const qPairs = decodePairs(rawQuery);
    const bPairs = req.method === 'POST' ? decodePairs(raw) : [];
    const auth = req.headers.authorization || '';
    const idemKey = req.headers['idempotency-key'];
    log.push({ method: req.method, path, query: qPairs.map((p) => p[2]), body: bPairs.map((p) => p[2]),
      headers: { 'stripe-version': req.headers['stripe-version'] || null, 'idempotency-key': idemKey || null,
        'content-type': req.method === 'POST' ? req.headers['content-type'] || null : null,
        auth_scheme: auth.split(' ')[0] || null } });

    let key = null;
    if (auth.startsWith('Bearer ')) key = auth.slice(7);
    else if (auth.startsWith('Basic ')) key = Buffer.from(auth.slice(6), 'base64').toString().split(':')[0];
    if (!key || !(key.startsWith('sk_test_') || key.startsWith('rk_test_'))) { // restricted test keys too
      const shown = key ? key.slice(0, 8) + '*'.repeat(Math.max(0, key.length - 12)) + key.slice(-4) : '';
      return send(res, 401, { error: { type: 'invalid_request_error',
        message: key ? `Invalid API Key provided: ${shown}` : "You did not provide an API key. You need to provide your API key in the Authorization header, using Bearer auth (e.g. 'Authorization: Bearer YOUR_SECRET_KEY')." } });
    }
    stats.requests++;
    if (!takeToken()) {
      stats.throttled++;
      const h = bucket.shouldRetry !== undefined ? { 'stripe-should-retry': String(bucket.shouldRetry) } : {};
      return send(res, 429, { error: { type: 'invalid_request_error', code: 'rate_limit',
        message: 'Request rate limit exceeded. Learn more about rate limits here https://stripe.com/docs/rate-limits.' } }, h);
    }
    let delayMs = 0; // {"count":N,"delayMs":MS}: answer normally, MS late (a client timeout)
    if (faults.length > 0 && faults[0].delayMs && !faults[0].status) {
      delayMs = faults[0].delayMs;
      if (--faults[0].count <= 0) faults.shift();
    } else if (faults.length > 0) {
      const f = faults[0];
      if (--f.count <= 0) faults.shift();
      const h = {};
      if (f.retryAfter !== undefined) h['retry-after'] = String(f.retryAfter);
      if (f.shouldRetry !== undefined) h['stripe-should-retry'] = String(f.shouldRetry);
      return send(res, f.status || 500, { error: { type: 'api_error', message: 'Injected fault from the test double.' } }, h);
    }
    if (req.method === 'POST' && req.headers['content-type'] && !req.headers['content-type'].startsWith('application/x-www-form-urlencoded'))
      return send(res, 400, errBody(new StripeError(400, 'invalid_request_error', 'Invalid request: Content-Type must be application/x-www-form-urlencoded')));

    let q, body;
    try { q = nest(qPairs); body = nest(bPairs); } catch (e) { return send(res, e.status, errBody(e)); }

    // Idempotency (https://docs.stripe.com/api/idempotent_requests): POSTs only.
    const fingerprint = JSON.stringify([req.method, path, bPairs.map((p) => [p[0], p[1]]).sort()]);
    const idemSlot = req.method === 'POST' && idemKey ? `${key}\u0000${idemKey}` : null;
    if (idemSlot && state.idem.has(idemSlot)) {
      const prev = state.idem.get(idemSlot);
      if (prev.fingerprint !== fingerprint)
        return send(res, 400, { error: { type: 'idempotency_error',
          message: `Keys for idempotent requests can only be used with the same parameters they were first used with. Try using a key other than '${idemKey}' if you meant to execute a different request.` } });
      return send(res, prev.status, prev.body, { ...prev.headers, 'idempotent-replayed': 'true', 'original-request': prev.requestId });
    }
    let status = 200, out, hdrs = {};
    api.version = req.headers['stripe-version'] || '2023-10-16'; // route() is synchronous
    try { out = route(req.method, path, q, body, idemKey); } catch (e) {
      if (!(e instanceof StripeError)) { status = 500; out = { error: { type: 'api_error', message: String(e) } }; } else { status = e.status; out = errBody(e); hdrs = e.headers || {}; }
    }
    // Stripe saves the answer of a request that began executing, errors included (not 5xx).
    if (idemSlot && status < 500) state.idem.set(idemSlot, { fingerprint, status, body: out, headers: hdrs, requestId: 'req_' + crypto.randomBytes(7).toString('hex') });
    if (delayMs) setTimeout(() => send(res, status, out, hdrs), delayMs);
    else send(res, status, out, hdrs);
  });
});
server.listen(PORT, '127.0.0.1', () => console.log(`stripe-double on 127.0.0.1:${server.address().port}`));

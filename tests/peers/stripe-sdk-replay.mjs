// Oracle for the C Stripe client's request encoding: replays the logical
// calls the C client made (read from the double's capture log) through the
// official `stripe` npm SDK against a freshly reset stripe-double.mjs, then
// prints the double's capture of the SDK's requests as JSON. A test then
// compares method, path, query/body pairs and headers of both captures.
//   node stripe-sdk-replay.mjs C_CAPTURE.json http://127.0.0.1:PORT
import fs from 'node:fs';
import Stripe from 'stripe';

const [capFile, base] = process.argv.slice(2);
const calls = JSON.parse(fs.readFileSync(capFile, 'utf8'));
const u = new URL(base);
const stripe = new Stripe('sk_test_sdk_replay', {
  host: u.hostname, port: +u.port, protocol: 'http', apiVersion: '2023-10-16', maxNetworkRetries: 0,
});

// decode "a[b][0]=v" tokens into the nested object the SDK takes
function nest(tokens) {
  const root = {};
  for (const tok of tokens) {
    const i = tok.indexOf('=');
    const key = decodeURIComponent(tok.slice(0, i));
    const value = decodeURIComponent(tok.slice(i + 1));
    const m = key.match(/^([^[\]]+)((?:\[[^[\]]*\])*)$/);
    const path = [m[1], ...[...m[2].matchAll(/\[([^[\]]*)\]/g)].map((x) => x[1])];
    let o = root;
    for (let j = 0; j < path.length - 1; j++) {
      if (o[path[j]] === undefined) o[path[j]] = /^\d+$/.test(path[j + 1]) ? [] : {};
      o = o[path[j]];
    }
    o[path[path.length - 1]] = value;
  }
  return root;
}

await fetch(`${base}/__double/reset`, { method: 'POST' });
for (const c of calls) {
  const q = nest(c.query);
  const b = nest(c.body);
  const opts = c.headers['idempotency-key'] ? { idempotencyKey: c.headers['idempotency-key'] } : {};
  // a call on another API version than the client's pinned one (the
  // request option the SDK sends as Stripe-Version)
  if (c.headers['stripe-version'] && c.headers['stripe-version'] !== '2023-10-16') opts.apiVersion = c.headers['stripe-version'];
  let m;
  try {
    if (c.path === '/v1/customers' && c.method === 'GET') await stripe.customers.list(q);
    else if (c.path === '/v1/customers' && c.method === 'POST') await stripe.customers.create(b, opts);
    else if ((m = c.path.match(/^\/v1\/customers\/([^/]+)$/)) && c.method === 'GET') await stripe.customers.retrieve(m[1], q);
    else if ((m = c.path.match(/^\/v1\/customers\/([^/]+)$/)) && c.method === 'POST') await stripe.customers.update(m[1], b, opts);
    else if ((m = c.path.match(/^\/v1\/customers\/([^/]+)\/sources$/)) && c.method === 'GET') await stripe.customers.listSources(m[1], q);
    else if ((m = c.path.match(/^\/v1\/customers\/([^/]+)\/sources$/)) && c.method === 'POST') await stripe.customers.createSource(m[1], b, opts);
    else if (c.path === '/v1/payment_methods' && c.method === 'POST') await stripe.paymentMethods.create(b, opts);
    else if (c.path === '/v1/payment_methods' && c.method === 'GET') await stripe.paymentMethods.list(q);
    else if ((m = c.path.match(/^\/v1\/payment_methods\/([^/]+)\/attach$/)) && c.method === 'POST') await stripe.paymentMethods.attach(m[1], b, opts);
    else if (c.path === '/v1/invoices' && c.method === 'GET') await stripe.invoices.list(q, opts);
    else if (c.path === '/v1/invoice_payments' && c.method === 'GET') await stripe.invoicePayments.list(q, opts);
    else if ((m = c.path.match(/^\/v1\/payment_intents\/([^/]+)$/)) && c.method === 'GET') await stripe.paymentIntents.retrieve(m[1], q, opts);
    else if ((m = c.path.match(/^\/v1\/invoices\/([^/]+)$/)) && c.method === 'GET') await stripe.invoices.retrieve(m[1], q, opts);
    else if ((m = c.path.match(/^\/v1\/invoices\/([^/]+)\/pay$/)) && c.method === 'POST') await stripe.invoices.pay(m[1], b, opts);
    else if ((m = c.path.match(/^\/v1\/subscriptions\/([^/]+)$/)) && c.method === 'POST') await stripe.subscriptions.update(m[1], b, opts);
    else if ((m = c.path.match(/^\/v1\/subscriptions\/([^/]+)$/)) && c.method === 'GET') await stripe.subscriptions.retrieve(m[1], q, opts);
    else throw new Error(`no SDK mapping for ${c.method} ${c.path}`);
  } catch (e) {
    if (!e.type || !String(e.type).startsWith('Stripe')) throw e; // a Stripe refusal is part of the flow
  }
}
const seen = await (await fetch(`${base}/__double/requests`)).json();
process.stdout.write(JSON.stringify(seen));

// Route module of the Stripe test double (stripe-double.mjs) for dunning (invoices, pay, subscriptions).
// route() returns the answer object, throws api.StripeError, or returns
// undefined when the request is not for this module.
export function reset(api) {}
export function route(method, path, q, body, api) {
  return undefined;
}

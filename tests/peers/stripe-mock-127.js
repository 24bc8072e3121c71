// Start stripe-stateful-mock bound to 127.0.0.1 only (its own CLI binds all
// interfaces). PORT picks the port (default 8000; 0: a free one); the first
// line printed names the port really used. TEST-PEERS.md §3a.
const { createExpressApp } = require('stripe-stateful-mock');
const port = +(process.env.PORT ?? 8000);
const server = createExpressApp().listen(port, '127.0.0.1', () =>
  console.log(`stripe-stateful-mock on 127.0.0.1:${server.address().port}`));

// Start the webhook receiver:
//   VELOURCITY_WEBHOOK_SECRET=whsec_... PORT=3000 node src/server.js
// During a secret rotation give both, comma-separated: VELOURCITY_WEBHOOK_SECRET=whsec_new,whsec_old

import { createApp } from './app.js';

// The real work: runs after Velourcity already has its 200, one event at a time.
async function handleEvent(event, { webhookId, attempt }) {
  const { data } = event;
  switch (event.type) {
    case 'order.created':
      console.log(`new order ${data.order_id}: ${data.total} ${data.currency} (attempt ${attempt})`);
      break;
    case 'order.driver_assigned':
    case 'order.picked_up':
    case 'order.delivered':
      console.log(`order ${data.order_id}: ${event.type.slice('order.'.length)}`);
      break;
    case 'order.cancelled':
      console.log(`order ${data.order_id} cancelled`);
      break;
    case 'payment.completed':
      console.log(`payment for order ${data.order_id} completed`);
      break;
    default:
      // New event types may appear: accept them (a 4xx would only bring retries) and move on.
      console.log(`ignoring ${event.type} (${webhookId})`);
  }
}

const secrets = (process.env.VELOURCITY_WEBHOOK_SECRET ?? '')
  .split(',')
  .map((s) => s.trim())
  .filter(Boolean);
if (secrets.length === 0) {
  console.error('Set VELOURCITY_WEBHOOK_SECRET to the endpoint secret (whsec_...; comma-separated during a rotation).');
  process.exit(1);
}

let app;
try {
  app = createApp({ secrets, onEvent: handleEvent });
} catch (err) {
  console.error(`Bad VELOURCITY_WEBHOOK_SECRET: ${err.message}`); // the message never holds the secret
  process.exit(1);
}

const port = Number(process.env.PORT ?? 3000);
const server = app.listen(port, () => {
  console.log(`Listening on http://localhost:${server.address().port}/webhooks (${secrets.length} secret(s))`);
});

// On Ctrl-C / SIGTERM: stop taking requests, finish the queued work, then exit.
for (const signal of ['SIGINT', 'SIGTERM']) {
  process.once(signal, () => {
    server.close(async () => {
      await app.locals.queue.idle();
      process.exit(0);
    });
  });
}

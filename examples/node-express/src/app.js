// The webhook endpoint as an Express app factory (server.js listens; tests call it directly).
//
// What the seed's snippet gets wrong, done right here:
// - The SDK's middleware (@velourcity/webhooks) reads the body as the exact bytes received:
//   signatures cover those bytes, and express.json() + JSON.stringify would not give them back.
// - Both signatures are checked in constant time by the SDK, with the timestamp window.
// - The answer comes first, the work after: Velourcity counts only a 2xx within 15 s, so a slow
//   handler turns into retries. Work runs from an in-process queue after the response.
// - Deliveries are at least once (retries, redrives), so duplicates are dropped by webhook-id.

import express from 'express';
import { checkSecrets, webhookMiddleware } from '@velourcity/webhooks';

// Retries of one delivery span about 27.5 h (8 attempts) and each carries the same webhook-id;
// remember ids a little longer than that. A dead-letter redrive later still repeats an id:
// use a shared store (Redis SET NX EX, a unique index) for that and for several processes.
const DEFAULT_DEDUPE_TTL_MS = 30 * 60 * 60 * 1000;

/** webhook-ids seen recently, each forgotten `ttlMs` after it was first seen. */
export class SeenIds {
  constructor(ttlMs, clock = Date.now) {
    this.ttlMs = ttlMs;
    this.clock = clock;
    this.expiry = new Map(); // insertion order == expiry order, since the TTL is fixed
  }

  /** True the first time `id` is seen within the window; false for a duplicate. */
  firstTime(id) {
    const now = this.clock();
    // Drop expired ids from the front: amortised O(1), memory bounded by the window's traffic.
    for (const [seen, expires] of this.expiry) {
      if (expires > now) break;
      this.expiry.delete(seen);
    }
    if (this.expiry.has(id)) return false;
    this.expiry.set(id, now + this.ttlMs);
    return true;
  }

  /** Forget `id`, so the next delivery of it is processed (used when processing failed). */
  forget(id) {
    this.expiry.delete(id);
  }
}

/** Runs jobs one at a time, in arrival order, after the current request has been answered. */
export class WorkQueue {
  constructor(onError) {
    this.jobs = [];
    this.running = null;
    this.onError = onError;
  }

  push(job) {
    this.jobs.push(job);
    // setImmediate: start only after this tick, i.e. after res.json() has been handed to the socket.
    this.running ??= new Promise((resolve) => setImmediate(resolve)).then(() => this.drain());
  }

  async drain() {
    while (this.jobs.length > 0) {
      const job = this.jobs.shift();
      try {
        await job();
      } catch (err) {
        this.onError(err);
      }
    }
    this.running = null;
  }

  /** Resolves once every queued job has run (tests, graceful shutdown). */
  async idle() {
    while (this.running) await this.running;
  }
}

/**
 * @param {object} options
 * @param {string | string[]} options.secrets  the endpoint secret(s), newest first during a rotation
 * @param {(event: object, meta: object) => unknown} options.onEvent  the real work (may be async)
 * @param {string} [options.path]  where webhooks are POSTed
 * @param {number} [options.tolerance]  seconds of clock skew accepted on webhook-timestamp
 * @param {() => number} [options.now]  unix seconds (tests); default the clock
 * @param {number} [options.dedupeTtlMs]
 * @param {{warn: Function, error: Function}} [options.logger]
 */
export function createApp({
  secrets,
  onEvent,
  path = '/webhooks',
  tolerance = 300,
  now = () => Date.now() / 1000,
  dedupeTtlMs = DEFAULT_DEDUPE_TTL_MS,
  logger = console,
}) {
  const usable = checkSecrets(secrets); // a bad secret fails at start-up, not per request
  const seen = new SeenIds(dedupeTtlMs, () => now() * 1000);
  const queue = new WorkQueue((err) => logger.error('webhook processing failed:', err));

  const app = express();
  app.disable('x-powered-by');
  app.locals.queue = queue;

  // Velourcity sends application/json; anything else is not one of its webhooks.
  const requireJson = (req, res, next) =>
    req.is('application/json')
      ? next()
      : res.status(400).json({ error: 'expected a Content-Type: application/json body' });
  // Only this route reads the raw body; other routes may use express.json() as usual.
  const verified = webhookMiddleware(usable, {
    tolerance,
    now,
    limit: 1024 * 1024,
    // The reason is logged for you and sent back: it names headers, never a secret.
    onRejected: (err) => logger.warn(`webhook rejected (${err.httpStatus}): ${err.message}`),
  });

  app.post(path, requireJson, verified, (req, res) => {
    const { event, webhookId: id, eventType, attempt, deliveryId } = req.webhook;
    if (!seen.firstTime(id)) {
      return res.status(200).json({ received: true, duplicate: true });
    }
    const meta = { webhookId: id, eventType, attempt, deliveryId };
    // Acknowledged before the work is done: if it fails, Velourcity will not send it again.
    // Forgetting the id lets a redrive through; for real guarantees, put the event in a
    // durable queue (a table, SQS, ...) here and answer 200 once it is stored.
    queue.push(async () => {
      try {
        await onEvent(event, meta);
      } catch (err) {
        seen.forget(id);
        throw err;
      }
    });
    return res.status(200).json({ received: true });
  });

  // JSON errors (e.g. 413 body too large from express.raw) instead of Express's HTML page.
  app.use((err, req, res, next) => {
    if (res.headersSent) return next(err);
    const status = Number.isInteger(err.status) && err.status >= 400 && err.status < 500 ? err.status : 500;
    if (status === 500) logger.error('webhook endpoint error:', err);
    return res.status(status).json({ error: status === 500 ? 'internal error' : err.message });
  });

  return app;
}

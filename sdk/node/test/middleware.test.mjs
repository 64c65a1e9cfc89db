// webhookMiddleware on a plain node:http server (the Express example tests it under Express):
// it reads the raw body itself, verifies, sets req.webhook, and answers rejections itself.
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { createServer } from 'node:http';
import { describe, test } from 'node:test';
import { webhookMiddleware } from '@velourcity/webhooks';
import vectorsModule from './vectors.cjs';

const { now, tolerance, vectors } = vectorsModule;

async function post(middleware, v, { headers = v.headers, body = v.rawBody, before } = {}) {
  const seen = [];
  const server = createServer((req, res) => {
    if (before) before(req);
    middleware(req, res, (err) => {
      if (err) {
        res.statusCode = 500;
        res.end(JSON.stringify({ error: 'next(err)', message: err.message }));
        return;
      }
      seen.push(req.webhook);
      res.setHeader('Content-Type', 'application/json');
      res.end(JSON.stringify({ received: true }));
    });
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  try {
    const res = await fetch(`http://127.0.0.1:${server.address().port}/webhooks`, {
      method: 'POST',
      headers,
      body,
    });
    return { status: res.status, body: await res.json(), seen };
  } finally {
    server.close();
    server.closeAllConnections();
  }
}

describe('every vector gets the status the Python SDK prescribes', () => {
  for (const v of vectors) {
    test(v.name, async () => {
      const res = await post(webhookMiddleware(v.secrets, { tolerance, now }), v);
      assert.equal(res.status, v.expect.status, JSON.stringify(res.body));
      if (v.expect.status === 200) {
        assert.equal(res.seen[0].event.id, v.expect.event_id);
        assert.deepEqual(res.seen[0].rawBody, v.rawBody);
      } else {
        assert.equal(res.body.error, v.expect.error);
        assert.equal(res.seen.length, 0);
        for (const secret of v.secrets) assert.ok(!JSON.stringify(res.body).includes(secret));
      }
    });
  }
});

describe('behaviour', () => {
  const valid = vectors.find((v) => v.name === 'order.created');

  test('req.webhook carries the ids a receiver dedupes and logs with', async () => {
    const res = await post(webhookMiddleware(valid.secrets, { tolerance, now: () => now }), valid);
    const [hook] = res.seen;
    assert.equal(hook.webhookId, valid.headers['webhook-id']);
    assert.equal(hook.eventType, 'order.created');
    assert.equal(hook.attempt, 1);
    assert.equal(hook.deliveryId, valid.headers['X-Velourcity-Delivery-Id']);
  });

  test('secrets from a function (rotation without a restart)', async () => {
    const res = await post(webhookMiddleware(() => valid.secrets, { tolerance, now }), valid);
    assert.equal(res.status, 200);
  });

  test('rejections are reported to onRejected', async () => {
    const v = vectors.find((x) => x.name === 'tampered body');
    const rejected = [];
    const res = await post(webhookMiddleware(v.secrets, { tolerance, now, onRejected: (e) => rejected.push(e) }), v);
    assert.equal(res.status, 401);
    assert.deepEqual(rejected.map((e) => e.name), ['InvalidSignature']);
  });

  test('a body over the limit gets 413', async () => {
    const res = await post(webhookMiddleware(valid.secrets, { tolerance, now, limit: 10 }), valid);
    assert.equal(res.status, 413);
  });

  test('a body already read by express.raw() is used as is', async () => {
    const res = await post(webhookMiddleware(valid.secrets, { tolerance, now }), valid, {
      before: (req) => {
        req.body = valid.rawBody;
      },
    });
    assert.equal(res.status, 200);
  });

  test('a body parsed by express.json() is a setup error, not a verification failure', async () => {
    const res = await post(webhookMiddleware(valid.secrets, { tolerance, now }), valid, {
      before: (req) => {
        req.body = JSON.parse(valid.body);
      },
    });
    assert.equal(res.status, 500);
    assert.match(res.body.message, /before express\.json\(\)/);
  });

  test('a bad secret fails when the middleware is made', () => {
    assert.throws(() => webhookMiddleware('whsec_%%%'));
    assert.throws(() => webhookMiddleware([]));
  });
});
